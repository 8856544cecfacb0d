"""No-reference quality: predict the full-reference VMAF a video would score against its pristine
original, from the video alone. Trained by us (`training/train_noref.py`) on synthetic degradations of
real clips (downscale, blur, noise, H.264 at a CRF sweep) scored with libvmaf; the weights ship in
`weights/noref.json` with the held-out rank correlation measured when they were trained.

Features, on luma, per sampled frame, averaged (all cheap, all classic):
- sharpness: log variance of the Laplacian; gradient energy at 1, ½ and ¼ scale and their ratios
  (upscaled or blurred video has little energy at the finest scale relative to the next);
- blocking: mean step across 8-pixel block edges relative to steps inside blocks;
- noise: Immerkær's fast noise estimate ("Fast Noise Variance Estimation", CVIU 1996);
- contrast.

The regressor is ridge regression on the standardized features. A small MLP fitted the training
clips better and generalised worse: leave-one-clip-out SROCC 0.39-0.97 against 0.81-0.90 for ridge
(see training/train_noref.py); brightness, motion and frame height were dropped for the same reason.

    from framefleet.quality import estimate_quality
    estimate_quality("upload.mp4").vmaf        # e.g. 87.3
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framefleet.errors import InputError, ModelError
from framefleet.media.decode import iter_frames

WEIGHTS = Path(__file__).parent / "weights" / "noref.json"
FEATURES = (
    "log_lap_var",
    "grad1",
    "grad2",
    "grad4",
    "ratio12",
    "ratio24",
    "blockiness",
    "noise",
    "contrast",
)
SAMPLE_FRAMES = 16  # frames scored per video
SAMPLE_STRIDE = 3  # every 3rd frame from the start: ~1.6 s at 30 fps


@dataclass(frozen=True)
class QualityEstimate:
    vmaf: float  # predicted full-reference VMAF (vmaf_v0.6.1), 0..100
    frames: int  # frames it was computed from
    model: str  # "noref-<version>"

    def to_dict(self) -> dict[str, Any]:
        return {"vmaf": round(self.vmaf, 2), "frames": self.frames, "model": self.model}


def _immerkaer(gray: np.ndarray) -> float:
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    h, w = gray.shape
    conv = cv2.filter2D(gray, -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(conv).sum() / (6.0 * max(1, (w - 2) * (h - 2))))


def _blockiness(gray: np.ndarray) -> float:
    dx = np.abs(np.diff(gray, axis=1))  # [H, W-1]: step between column j and j+1
    dy = np.abs(np.diff(gray, axis=0))
    if dx.shape[1] < 16 or dy.shape[0] < 16:
        return 1.0
    edge = dx[:, 7::8].mean() + dy[7::8, :].mean()
    inner = dx.mean() + dy.mean() + 1e-3
    return float(edge / inner)


def _grad(gray: np.ndarray) -> float:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


def frame_features(rgb: np.ndarray) -> np.ndarray:
    """Feature vector (order of FEATURES) of one [H, W, 3] uint8 frame."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)  # [H, W], 0..255
    h, w = gray.shape
    half = cv2.resize(gray, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    quarter = cv2.resize(half, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    g1, g2, g4 = _grad(gray), _grad(half), _grad(quarter)
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    return np.array(
        [
            np.log1p(float(lap.var())),
            np.log1p(g1),
            np.log1p(g2),
            np.log1p(g4),
            g1 / (g2 + 1e-3),
            g2 / (g4 + 1e-3),
            _blockiness(gray),
            np.log1p(_immerkaer(gray)),
            float(gray.std()) / 64.0,
        ],
        dtype=np.float64,
    )


def video_features(frames: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
    """Mean feature vector over frames (already sampled by the caller) and how many there were."""
    rows = [frame_features(frame) for frame in frames]
    if not rows:
        raise InputError("no frames to estimate quality from")
    return np.mean(rows, axis=0), len(rows)


def sample_frames(path: str | Path, count: int = SAMPLE_FRAMES, stride: int = SAMPLE_STRIDE) -> list[np.ndarray]:
    """Frames 0, stride, 2·stride, ... up to `count` of them."""
    picked = []
    for i, frame in enumerate(iter_frames(path)):
        if i % stride == 0:
            picked.append(frame)
        if len(picked) >= count:
            break
    return picked


@functools.cache
def _model(path: Path = WEIGHTS) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall framefleet or run training/train_noref.py")
    model: dict[str, Any] = json.loads(path.read_text())
    if tuple(model["features"]) != FEATURES:
        raise ModelError(f"{path} was trained on other features; retrain with training/train_noref.py")
    return model


def predict(features: np.ndarray, model: dict[str, Any] | None = None) -> float:
    """Predicted VMAF from a feature vector (or a [K, F] matrix → the mean prediction of each row)."""
    m = model or _model()
    x = (np.atleast_2d(features) - np.asarray(m["mean"])) / np.asarray(m["std"])  # [K, F]
    h = x
    layers = m["layers"]
    for k, layer in enumerate(layers):
        h = h @ np.asarray(layer["w"]) + np.asarray(layer["b"])  # [K, units]
        if k < len(layers) - 1:
            h = np.tanh(h)
    y = h[:, 0] * m["target_std"] + m["target_mean"]
    return float(np.clip(y, 0.0, 100.0).mean())


def estimate_quality(source: str | Path | list[np.ndarray]) -> QualityEstimate:
    """No-reference VMAF estimate of a video file (first ~1.6 s sampled) or of a list of frames."""
    frames = sample_frames(source) if not isinstance(source, list) else source
    feats, n = video_features(frames)
    m = _model()
    return QualityEstimate(vmaf=predict(feats, m), frames=n, model=f"noref-{m['version']}")
