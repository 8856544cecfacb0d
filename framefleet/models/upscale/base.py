"""The upscaler protocol and the machinery every learned upscaler shares: frame checks, batching,
tiling with overlap, and the two backends (PyTorch on CPU or CUDA+bf16; ONNX Runtime on CPU).

An upscaler is any callable `frames[N, H, W, 3] uint8 -> frames[N, sH, sW, 3] uint8` with a name, a
version and its parameters: those three make the producer of the variant it writes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from framefleet.errors import InputError, ModelError


@runtime_checkable
class Upscaler(Protocol):
    name: str
    version: str
    scale: int

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...

    def params(self) -> dict[str, Any]: ...


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Accept [N, H, W, 3] (or one [H, W, 3]) uint8; return [N, H, W, 3]."""
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise InputError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames[None] if frames.ndim == 3 else frames


def check_scale(name: str, scale: int, supported: tuple[int, ...]) -> int:
    if scale not in supported:
        raise InputError(
            f"model {name!r} does not support scale {scale}; it supports {', '.join(f'×{s}' for s in supported)}. "
            "Pick one of those with --scale, or another model with --model"
        )
    return scale


def file_digest(path: Path) -> str:
    """Short content hash of a weights file: part of the producer, so new weights make new variants."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


ArrayFn = Callable[[np.ndarray], np.ndarray]  # float32 [N, C, h, w] in 0..1 -> [N, C, s*h, s*w]


def run_tiled(fn: ArrayFn, x: np.ndarray, scale: int, tile: int, overlap: int) -> np.ndarray:
    """Run `fn` over `x` [N, 3, H, W] in tiles of `tile`² input pixels, each read with `overlap` extra
    pixels on every side and cropped back, so the seams match the untiled output whenever `overlap`
    covers the model's receptive radius. Bounds peak memory on large frames."""
    n, c, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)
    out = np.empty((n, c, h * scale, w * scale), dtype=np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(0, y0 - overlap), max(0, x0 - overlap)
            py1, px1 = min(h, y1 + overlap), min(w, x1 + overlap)
            sr = fn(np.ascontiguousarray(x[:, :, py0:py1, px0:px1]))  # [N, 3, s*(py1-py0), s*(px1-px0)]
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = sr[
                :, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
            ]
    return out


def to_planar(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1 / 255)  # [N,3,H,W]


def to_frames(planar: np.ndarray) -> np.ndarray:
    p = planar * np.float32(255)  # [N, 3, sH, sW]
    p += np.float32(0.5)
    np.clip(p, 0, 255, out=p)
    u = p.astype(np.uint8)  # [N, 3, sH, sW]
    out = np.empty((u.shape[0], u.shape[2], u.shape[3], 3), np.uint8)  # [N, sH, sW, 3]
    for i in range(len(u)):
        # cv2.merge interleaves the planes 5× faster than numpy's strided transpose-copy (1080p: 15 vs 74 ms)
        cv2.merge([u[i, 0], u[i, 1], u[i, 2]], dst=out[i])
    return out


def cpu_threads() -> int:
    """Threads a model may use: FRAMEFLEET_THREADS, else the cores this process may run on."""
    raw = os.environ.get("FRAMEFLEET_THREADS")
    if raw:
        return max(1, int(raw))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LearnedUpscaler:
    """Batches and tiles frames through one backend function. Subclasses set name/version/scale."""

    name = "learned"
    version = "0"
    scale = 2

    def __init__(self, fn: ArrayFn, *, backend: str, tile: int, overlap: int, batch: int, extra: dict[str, Any]):
        self._fn, self.backend, self.tile, self.overlap, self.batch = fn, backend, tile, overlap, max(1, batch)
        self._extra = extra

    def params(self) -> dict[str, Any]:
        # Tiling with enough overlap and the batch size do not change the pixels; the backend can (bf16).
        return {"scale": self.scale, "backend": self.backend, **self._extra}

    def net_input(self, frames: np.ndarray) -> np.ndarray:
        """What the backend function reads from [n, H, W, 3] uint8: planar RGB in 0..1 unless overridden."""
        return to_planar(frames)  # [n, 3, H, W]

    def picture(self, frames: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The upscaled frames from the function's output `y` (and the input frames, for models that need them)."""
        return to_frames(y)  # [n, sH, sW, 3]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        outs = []
        for i in range(0, len(frames), self.batch):
            chunk = frames[i : i + self.batch]  # [n, H, W, 3]
            y = run_tiled(self._fn, self.net_input(chunk), self.scale, self.tile, self.overlap)  # [n, C, sH, sW]
            outs.append(self.picture(chunk, y))
        return np.concatenate(outs) if outs else np.empty((0, 0, 0, 3), np.uint8)


def torch_fn(module: Any, device: str, *, bf16: bool) -> ArrayFn:
    """A numpy-in numpy-out function running `module` on `device` (bf16 autocast on CUDA when asked)."""
    import torch

    module = module.eval().to(device)
    if device == "cpu":
        torch.set_num_threads(cpu_threads())
        module = module.to(memory_format=torch.channels_last)

    def fn(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            t = torch.from_numpy(x).to(device)  # [N, 3, h, w]
            if device == "cpu":
                t = t.contiguous(memory_format=torch.channels_last)
            if bf16 and device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y = module(t)
            else:
                y = module(t)
            return np.asarray(y.float().cpu().numpy())  # [N, 3, s*h, s*w]

    return fn


def torch_label(device: str, bf16: bool) -> str:
    """The backend part of a producer for a PyTorch run: bf16 autocast only applies on CUDA."""
    return f"torch-{device.split(':')[0]}" + ("-bf16" if bf16 and device.startswith("cuda") else "")


def export_upscaler_onnx(module: Any, out: Path, channels: int) -> None:
    """Export an upscaler's network ([n, channels, h, w] -> [n, C, sh, sw]) to ONNX with dynamic batch and size."""
    import torch

    x = torch.rand(1, channels, 64, 64)  # [1, C, h, w]
    torch.onnx.export(
        module,
        (x,),
        str(out),
        dynamo=False,  # the TorchScript exporter needs no onnxscript and gives a small, plain graph
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h2", 3: "w2"}},
        opset_version=17,
    )


def onnx_fn(path: Path) -> tuple[ArrayFn, int]:
    """A numpy-in numpy-out function running the ONNX model at `path` on the CPU, and the channels it takes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cpu_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"ONNX Runtime cannot load {path}: {e}") from None
    name, shape = session.get_inputs()[0].name, session.get_inputs()[0].shape  # [n, C, h, w]

    def fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0])

    return fn, int(shape[1]) if isinstance(shape[1], int) else 3


def import_openvino() -> Any:
    """The `openvino` module with its telemetry off, or None when it is not installed.

    `import openvino` sends a usage event to Google Analytics (openvino/tools/ovc/__init__.py), from a forked
    process when the `openvino_telemetry` package is present. Offline, that fork deadlocked and our process hung
    at exit (found in `framefleet demo`). Marking the telemetry module absent makes OpenVINO fall back to its own
    no-op stub (openvino/tools/ovc/telemetry_utils.py), so nothing is sent and nothing forks."""
    import sys

    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
        sys.modules.setdefault("openvino_telemetry.backend", None)  # type: ignore[arg-type]
    try:
        import openvino
    except ImportError:
        return None
    return openvino


def openvino_fn(path: Path, *, bf16: bool = True) -> tuple[ArrayFn, str]:
    """A numpy-in numpy-out function running the ONNX model at `path` with OpenVINO on the CPU, and the
    precision it runs in: bf16 where the CPU computes in it natively (and `bf16`), else f32."""
    ov = import_openvino()
    if ov is None:
        raise ModelError("the openvino backend needs OpenVINO: pip install openvino (or use --backend onnx)")
    core = ov.Core()
    native_bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    precision = "bf16" if bf16 and native_bf16 else "f32"
    config = {"INFERENCE_NUM_THREADS": cpu_threads(), "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": precision}  # fmt: skip
    try:
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own
        raise ModelError(f"OpenVINO cannot load {path}: {e}") from None
    request = compiled.create_infer_request()

    def fn(x: np.ndarray) -> np.ndarray:
        # copy: the request reuses its output buffer on the next call
        return np.array(request.infer({0: x})[0], copy=True)

    return fn, precision


def resolve_device(device: str) -> str:
    if device != "auto":
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise InputError(f"device {device!r} asked for, but this machine has no CUDA GPU; use --device cpu")
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
