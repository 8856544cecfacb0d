"""Real-ESRGAN compact: SRVGGNetCompact (Wang et al., Real-ESRGAN, 2021; `realesr-animevideov3`).

A plain VGG-style stack at low resolution: conv3×3 → PReLU, `num_conv` times, then conv to
3·r² channels and a pixel shuffle, plus a nearest-neighbour upsample of the input as a skip. The
x2/x3 `realesr-animevideov3` files are the ×4 network followed by a bicubic downscale (0.5, 0.75), as in
their ncnn graphs; `post_scale` reproduces that.

Weights: a user's `.pth` (Real-ESRGAN training output: {"params_ema": ...} or {"params": ...}) or a
safetensors file written by `ncnn_convert` (the pretrained ncnn files). The architecture is read from
the weights, never assumed.

    framefleet enhance clip.mp4 --model realesr-animevideov3 --scale 2
    framefleet enhance clip.mp4 --model srvgg --weights my-net_x4.pth --scale 4
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from framefleet.errors import InputError, ModelError
from framefleet.models.upscale.base import (
    LearnedUpscaler,
    check_scale,
    file_digest,
    resolve_device,
    torch_fn,
    torch_label,
)

VERSION = "1"


def build_srvgg(num_feat: int = 64, num_conv: int = 16, upscale: int = 4, post_scale: float = 1.0) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SRVGGNetCompact(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.upscale, self.post_scale = upscale, post_scale
            layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
            for _ in range(num_conv):
                layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
            layers.append(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))
            self.body = nn.ModuleList(layers)
            self.upsampler = nn.PixelShuffle(upscale)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 3, H, W] in 0..1
            out = x
            for layer in self.body:
                out = layer(out)  # [N, F, H, W], last: [N, 3r², H, W]
            out = self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")  # [N,3,rH,rW]
            if self.post_scale != 1.0:
                out = F.interpolate(out, scale_factor=self.post_scale, mode="bicubic", align_corners=False)
            return out

    return SRVGGNetCompact()


def architecture(state: dict[str, Any]) -> tuple[int, int, int]:
    """(num_feat, num_conv, upscale) read from a SRVGGNetCompact state dict."""
    convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"body\.(\d+)\.weight", k)))
    if not convs or "body.0.weight" not in state:
        raise ModelError("weights are not a SRVGGNetCompact state dict (no body.N.weight keys)")
    last = state[f"body.{convs[-1]}.weight"]
    num_feat = int(state["body.0.weight"].shape[0])
    out_ch = int(last.shape[0])
    upscale = round((out_ch / 3) ** 0.5)
    if 3 * upscale * upscale != out_ch:
        raise ModelError(f"last conv has {out_ch} outputs, not 3·r² for an integer scale r")
    num_conv = (convs[-1] - 2) // 2
    return num_feat, num_conv, upscale


def load_state(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A state dict and its metadata from `.safetensors` or a Real-ESRGAN `.pth`."""
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist; pass the path of a .pth or .safetensors file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        return dict(load_file(str(path))), meta
    import torch

    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)  # no pickled code runs
    except Exception as e:
        raise InputError(f"{path} is not a PyTorch weights file this loader can read safely: {e}") from None
    if isinstance(raw, dict):
        for key in ("params_ema", "params", "state_dict"):
            if isinstance(raw.get(key), dict):
                return dict(raw[key]), {}
        return dict(raw), {}
    raise InputError(f"{path}: expected a dict of tensors, got {type(raw).__name__}")


class SRVGGUpscaler(LearnedUpscaler):
    def __init__(
        self,
        weights: Path,
        *,
        scale: int,
        name: str = "srvgg",
        backend: str = "torch",
        device: str = "auto",
        tile: int = 512,
        batch: int = 1,
        bf16: bool = True,
    ) -> None:
        state, meta = load_state(weights)
        num_feat, num_conv, net_scale = architecture(state)
        post = float(meta.get("post_scale", 1.0))
        native = round(net_scale * post)
        check_scale(name, scale, (native,))
        if backend != "torch":
            raise InputError(f"model {name!r} runs on the torch backend only; drop --backend {backend}")
        module = build_srvgg(num_feat, num_conv, net_scale, post)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelError(f"{weights}: weights do not fit SRVGGNetCompact: {str(e).splitlines()[0]}") from None
        dev = resolve_device(device)
        self.name, self.version, self.scale = name, VERSION, scale
        # 18 stacked 3×3 convs see 18 pixels each side; the tile border must cover that (×1/post for x2/x3).
        overlap = num_conv + 2 + 4
        super().__init__(
            torch_fn(module, dev, bf16=bf16),
            backend=torch_label(dev, bf16),
            tile=tile,
            overlap=overlap,
            batch=batch,
            extra={"weights": file_digest(weights), "num_feat": num_feat, "num_conv": num_conv},
        )


__all__ = ["SRVGGUpscaler", "architecture", "build_srvgg", "load_state"]
