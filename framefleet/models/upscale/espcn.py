"""Our small fast CPU upscaler: ESPCN (Shi et al., 2016, "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network") learning the residual over
bicubic, as VDSR does. Since v4 the residual is of luma only, as in the ESPCN paper:

    δY = shuffle_r(conv3×3(f2→r²) ∘ tanh ∘ conv3×3(f1→f2) ∘ tanh ∘ conv5×5(1→f1) (Y))
    RGB = bicubic(RGB) + δY, the same δY on R, G and B

Adding one δ to R, G and B moves Y by δ and leaves Cb and Cr alone (their coefficients sum to 0), so the
colour is bicubic's and the detail is learned where the eye (and PSNR-Y, SSIM and VMAF) looks. The last
conv starts at zero, so an untrained net *is* bicubic. The bicubic and the sum run in OpenCV/NumPy in
float, outside the network, and are rounded once: rounding the bicubic to uint8 first costs 0.1 dB at
40 dB; ONNX Runtime's cubic Resize took 80% of a 540p frame.

v4 (`training/distill_espcn.py`) is distilled from v3, an RGB-residual net (3→64→32→12) that
`training/train_espcn.py` trained on real photographs degraded the way uploads are (×2 downscale, blur,
H.264 at a CRF sweep): v4 starts as v3 seen through grey (its RGB taps summed, its outputs mixed to
luma), keeps the conv1 channels conv2 weighs most, and learns to match v3's luma. Weights whose conv1
takes 3 channels (v3, or a user's) still run, as an RGB residual. Both ship: `weights/espcn-x2.safetensors`
and the ONNX export the default CPU backend runs (`weights/espcn-x2.onnx`).

    framefleet enhance clip.mp4 --model espcn --scale 2             # ONNX Runtime on the CPU
    framefleet enhance clip.mp4 --model espcn --backend torch        # PyTorch (CUDA + bf16 when present)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framefleet.errors import InputError, ModelError
from framefleet.models.upscale.base import (
    ArrayFn,
    LearnedUpscaler,
    check_scale,
    file_digest,
    onnx_fn,
    resolve_device,
    torch_fn,
    torch_label,
)

VERSION = "4"
SCALES = (2,)
WEIGHTS_DIR = Path(__file__).parent / "weights"
RECEPTIVE_RADIUS = 4  # 5×5 then two 3×3 convs: 2 + 1 + 1 pixels each side


def weights_path(scale: int, kind: str = "safetensors") -> Path:
    return WEIGHTS_DIR / f"espcn-x{scale}.{kind}"


def widths(state: dict[str, Any]) -> tuple[int, int, int]:
    """(f1, f2, channels) of a saved ESPCN, read from its weights: channels 1 is a luma residual, 3 an RGB one."""
    w1 = state["conv1.weight"]  # [f1, channels, 5, 5]
    return int(w1.shape[0]), int(state["conv2.weight"].shape[0]), int(w1.shape[1])


def build_espcn(scale: int = 2, f1: int = 64, f2: int = 32, channels: int = 1) -> Any:
    """The residual branch (what ships and what ONNX runs): `channels` 1 reads Y and gives δY, 3 reads and
    gives RGB. The picture is bicubic plus this (`add_luma_residual`, or `bicubic_skip` for RGB)."""
    import torch
    from torch import nn

    class ESPCNResidual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = scale
            self.conv1 = nn.Conv2d(channels, f1, 5, padding=2)
            self.conv2 = nn.Conv2d(f1, f2, 3, padding=1)
            self.conv3 = nn.Conv2d(f2, channels * scale * scale, 3, padding=1)
            self.shuffle = nn.PixelShuffle(scale)
            assert self.conv3.bias is not None
            nn.init.zeros_(self.conv3.weight)
            nn.init.zeros_(self.conv3.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, H, W] in 0..1, C = channels
            h = torch.tanh(self.conv1(x))  # [N, f1, H, W]
            h = torch.tanh(self.conv2(h))  # [N, f2, H, W]
            detail: torch.Tensor = self.shuffle(self.conv3(h))  # [N, C, rH, rW]: added to bicubic
            return detail

    return ESPCNResidual()


def bicubic_skip(x: np.ndarray, scale: int) -> np.ndarray:
    """OpenCV bicubic (a = −0.75, pixel centres as torch's align_corners=False) of [N, 3, h, w] float32."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h * scale, w * scale), np.float32)
    for i in range(n):
        for k in range(c):  # plane by plane: no interleaving copies (3× faster than resizing HWC)
            cv2.resize(x[i, k], (w * scale, h * scale), dst=out[i, k], interpolation=cv2.INTER_CUBIC)
    return out


def luma_planar(frames: np.ndarray) -> np.ndarray:
    """Y = 0.299 R + 0.587 G + 0.114 B of [N, H, W, 3] uint8, as float32 [N, 1, H, W] in 0..1 (OpenCV rounds Y
    to 8 bits, as training does)."""
    n, h, w, _ = frames.shape
    y = np.empty((n, 1, h, w), np.float32)
    for i in range(n):
        y[i, 0] = cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY)
    y *= np.float32(1 / 255)
    return y


def add_luma_residual(frames: np.ndarray, delta: np.ndarray, scale: int) -> np.ndarray:
    """bicubic(frames) + δY on every channel, rounded once: [N, H, W, 3] uint8, [N, 1, sH, sW] → [N, sH, sW, 3]."""
    n, h, w, _ = frames.shape
    out = np.empty((n, h * scale, w * scale, 3), np.uint8)
    for i in range(n):
        base = cv2.resize(frames[i].astype(np.float32), (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
        d = delta[i, 0] * np.float32(255)  # [sH, sW]
        d += np.float32(0.5)  # round half up, by the truncation of astype below
        base += d[..., None]  # [sH, sW, 3]
        np.clip(base, 0, 255, out=base)
        out[i] = base.astype(np.uint8)
    return out


def _with_skip(residual: ArrayFn, scale: int) -> ArrayFn:
    def fn(x: np.ndarray) -> np.ndarray:
        y = residual(x)  # [N, 3, sh, sw]
        y += bicubic_skip(x, scale)
        return y

    return fn


class ESPCNUpscaler(LearnedUpscaler):
    name = "espcn"
    version = VERSION

    def __init__(
        self,
        *,
        scale: int = 2,
        backend: str = "onnx",
        device: str = "auto",
        tile: int = 0,
        batch: int = 4,
        bf16: bool = True,
        weights: Path | None = None,
    ) -> None:
        check_scale(self.name, scale, SCALES)
        self.scale = scale
        if backend == "onnx":
            path = weights or weights_path(scale, "onnx")
            if not path.is_file():
                raise ModelError(f"{path} is missing; reinstall framefleet or run training/distill_espcn.py")
            (fn, self.channels), label = onnx_fn(path), "onnx-cpu"
        elif backend == "torch":
            path = weights or weights_path(scale)
            from safetensors.torch import load_file

            state = load_file(str(path))
            f1, f2, self.channels = widths(state)
            module = build_espcn(scale, f1, f2, self.channels)
            module.load_state_dict(state)
            dev = resolve_device(device)
            fn = torch_fn(module, dev, bf16=bf16)
            label = torch_label(dev, bf16)
        else:
            raise InputError(f"unknown backend {backend!r} for espcn; choose onnx or torch")
        if self.channels not in (1, 3):
            raise ModelError(f"{path} is not an ESPCN: its input has {self.channels} channels, not 1 (Y) or 3 (RGB)")
        # Both backends run the same trained weights: the digest is of the safetensors file they came from.
        super().__init__(
            fn if self.channels == 1 else _with_skip(fn, scale),
            backend=label,
            tile=tile,
            # The luma net's bicubic runs on the whole frame, outside the tiles; the RGB net's runs inside
            # them and needs its own support (2 px) too, so the seams match.
            overlap=RECEPTIVE_RADIUS + (0 if self.channels == 1 else 2),
            batch=batch,
            extra={"weights": file_digest(weights or weights_path(scale))},
        )

    def net_input(self, frames: np.ndarray) -> np.ndarray:
        return luma_planar(frames) if self.channels == 1 else super().net_input(frames)

    def picture(self, frames: np.ndarray, y: np.ndarray) -> np.ndarray:
        # The luma net gives δY [n, 1, sH, sW]; the RGB net's output already holds its bicubic skip.
        return add_luma_residual(frames, y, self.scale) if self.channels == 1 else super().picture(frames, y)
