"""Our small fast CPU upscaler: ESPCN (Shi et al., 2016, "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network") learning the residual over
bicubic, as VDSR does:

    y = bicubic(x) + shuffle_r(conv3×3(32→3r²) ∘ tanh ∘ conv3×3(64→32) ∘ tanh ∘ conv5×5(3→64) (x))

About 27 k parameters, all at low resolution. The last conv starts at zero, so the untrained net *is*
bicubic and training can only add detail. The bicubic skip runs in OpenCV, outside the network:
ONNX Runtime's cubic Resize took 80% of the time of a 540p frame (2.0 fps against 9 fps without it).

Trained by us with `training/train_espcn.py` on real photographs degraded the way uploads are (×2
downscale, H.264 at a CRF sweep); the weights ship with
the package (`weights/espcn-x2.safetensors`) together with the ONNX export that the default CPU
backend runs (`weights/espcn-x2.onnx`, made by the same script).

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
)

VERSION = "3"
SCALES = (2,)
WEIGHTS_DIR = Path(__file__).parent / "weights"
RECEPTIVE_RADIUS = 4  # 5×5 then two 3×3 convs: 2 + 1 + 1 pixels each side


def weights_path(scale: int, kind: str = "safetensors") -> Path:
    return WEIGHTS_DIR / f"espcn-x{scale}.{kind}"


def widths(state: dict[str, Any]) -> tuple[int, int]:
    """(f1, f2) of a saved ESPCN: read from its weights, so pruned or widened nets load too."""
    return int(state["conv1.weight"].shape[0]), int(state["conv2.weight"].shape[0])


def build_espcn(scale: int = 2, f1: int = 64, f2: int = 32) -> Any:
    """The residual branch (what ships and what ONNX runs); add `bicubic_skip` for the picture."""
    import torch
    from torch import nn

    class ESPCNResidual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = scale
            self.conv1 = nn.Conv2d(3, f1, 5, padding=2)
            self.conv2 = nn.Conv2d(f1, f2, 3, padding=1)
            self.conv3 = nn.Conv2d(f2, 3 * scale * scale, 3, padding=1)
            self.shuffle = nn.PixelShuffle(scale)
            assert self.conv3.bias is not None
            nn.init.zeros_(self.conv3.weight)
            nn.init.zeros_(self.conv3.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 3, H, W] in 0..1
            h = torch.tanh(self.conv1(x))  # [N, f1, H, W]
            h = torch.tanh(self.conv2(h))  # [N, f2, H, W]
            detail: torch.Tensor = self.shuffle(self.conv3(h))  # [N, 3, rH, rW]: added to bicubic(x)
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
                raise ModelError(f"{path} is missing; reinstall framefleet or run training/train_espcn.py")
            fn, label = onnx_fn(path), "onnx-cpu"
        elif backend == "torch":
            path = weights or weights_path(scale)
            from safetensors.torch import load_file

            state = load_file(str(path))
            module = build_espcn(scale, *widths(state))
            module.load_state_dict(state)
            dev = resolve_device(device)
            fn = torch_fn(module, dev, bf16=bf16)
            label = f"torch-{dev.split(':')[0]}" + ("-bf16" if bf16 and dev.startswith("cuda") else "")
        else:
            raise InputError(f"unknown backend {backend!r} for espcn; choose onnx or torch")
        # Both backends run the same trained weights: the digest is of the safetensors file they came from.
        super().__init__(
            _with_skip(fn, scale),
            backend=label,
            tile=tile,
            overlap=RECEPTIVE_RADIUS + 2,  # + the bicubic skip's support (2 px), so seams match
            batch=batch,
            extra={"weights": file_digest(weights or weights_path(scale))},
        )
