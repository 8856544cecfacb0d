"""The ways an upload lost its resolution, as one vocabulary for training and benchmarks: a ×1/s downscale by
one of several resamplers, optionally after a little optical blur, optionally re-encoded with H.264.

Resamplers (`KERNELS`):
- `bicubic`, `lanczos`, `bilinear`: Pillow's, which widen the filter by the factor when they shrink
  (antialiased, as MATLAB's imresize, FFmpeg's swscale and image editors do);
- `area`: OpenCV's INTER_AREA, the box average (FFmpeg's `area`);
- `cv2-bicubic`, `cv2-lanczos`: OpenCV's, which do *not* widen the filter (aliased: what a pipeline that
  calls cv2.resize to shrink gives).

    from framefleet.quality.degrade import Degradation, degrade_frames
    low = degrade_frames(frames, Degradation("bicubic", blur=0.7, crf=18), scale=2)
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from framefleet.errors import InputError

_PIL = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}
_CV2 = {"area": cv2.INTER_AREA, "cv2-bicubic": cv2.INTER_CUBIC, "cv2-lanczos": cv2.INTER_LANCZOS4}
KERNELS = (*_PIL, *_CV2)
GRID_KERNELS = ("bicubic", "lanczos", "bilinear", "area")  # the grid; the cv2 ones are extra
MILD_BLUR = 0.7  # σ in high-res pixels of the grid's "mild blur" (a slightly soft lens or a denoiser)


@dataclass(frozen=True)
class Degradation:
    kernel: str = "bicubic"
    blur: float = 0.0  # Gaussian σ in high-res pixels, applied before the downscale; 0 = none
    crf: int | None = None  # H.264 (libx264, preset medium) CRF of the re-encode; None = uncompressed

    @property
    def label(self) -> str:
        blur = f" blur {self.blur:g}" if self.blur else ""
        return f"{self.kernel} ×½{blur}, " + ("no compression" if self.crf is None else f"CRF {self.crf}")


def grid(crfs: Sequence[int | None] = (None, 18, 28), blurs: Sequence[float] = (0.0, MILD_BLUR)) -> list[Degradation]:
    """The benchmark's grid: every grid kernel × compression × blur."""
    return [Degradation(k, b, c) for k in GRID_KERNELS for c in crfs for b in blurs]


def downscale(frame: np.ndarray, kernel: str, scale: int = 2, blur: float = 0.0) -> np.ndarray:
    """[H, W, C] uint8 → [H/s, W/s, C] (H and W must divide by `scale`)."""
    h, w = frame.shape[:2]
    if h % scale or w % scale:
        raise InputError(f"a {w}×{h} frame does not divide by {scale}; crop it to a multiple first")
    if blur > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    size = (w // scale, h // scale)
    if kernel in _PIL:
        return np.asarray(Image.fromarray(frame).resize(size, _PIL[kernel], reducing_gap=None))
    if kernel in _CV2:
        return cv2.resize(frame, size, interpolation=_CV2[kernel])
    raise InputError(f"unknown downscale kernel {kernel!r}; choose one of {', '.join(KERNELS)}")


def degrade_frames(frames: Sequence[np.ndarray], d: Degradation, scale: int = 2, fps: float = 25) -> np.ndarray:
    """The frames [N, H, W, 3] uint8 as the upload would have them: [N, H/s, W/s, 3]. Compressed frames are
    one H.264 stream (so inter-frame prediction is part of the loss, as in a real upload)."""
    from framefleet.media import encode_frames, iter_frames
    from framefleet.media.encode import EncodeSettings

    low = [downscale(f, d.kernel, scale, d.blur) for f in frames]
    if d.crf is None:
        return np.stack(low)
    h, w = low[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="framefleet-degrade-") as tmp:
        path = Path(tmp) / "low.mp4"
        encode_frames(low, path, fps=fps, settings=EncodeSettings(crf=d.crf, preset="medium"))
        return np.stack([f[:h, :w] for f in iter_frames(path)])  # odd sizes were padded by one edge pixel
