"""Classical baselines: bicubic and Lanczos resampling (OpenCV), the floor every learned model must beat.

framefleet enhance clip.mp4 --model bicubic --scale 2
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from framefleet.errors import InputError
from framefleet.models.upscale.base import check_frames, check_scale

SCALES = (2, 3, 4)
_FILTERS = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
RESAMPLERS = tuple(_FILTERS)  # the upscalers that are a plain resize (no weights, nothing to calibrate)


class ResampleUpscaler:
    version = "1"

    def __init__(self, name: str, *, scale: int = 2) -> None:
        if name not in _FILTERS:
            raise InputError(f"unknown resampling filter {name!r}; choose {' or '.join(_FILTERS)}")
        self.name, self.scale = name, check_scale(name, scale, SCALES)
        self._flag = _FILTERS[name]

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale, "opencv": cv2.__version__.split(".")[0]}

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        n, h, w, _ = frames.shape
        out = np.empty((n, h * self.scale, w * self.scale, 3), np.uint8)  # [N, sH, sW, 3]
        for i, frame in enumerate(frames):
            out[i] = cv2.resize(frame, (w * self.scale, h * self.scale), interpolation=self._flag)
        return out
