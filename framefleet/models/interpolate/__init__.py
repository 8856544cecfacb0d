"""Frame-rate up-conversion: `Interpolator.midpoint(a, b)` and `double_rate` over a frame sequence.

| name          | method                                                     |
|---------------|------------------------------------------------------------|
| dis (default) | DIS optical flow both ways, occlusion-aware blending (ours) |
| minterpolate  | FFmpeg's motion-compensated interpolation (baseline)       |
"""

from __future__ import annotations

from framefleet.errors import InputError
from framefleet.models.interpolate.base import Interpolator, double_rate
from framefleet.models.interpolate.dis import DISInterpolator
from framefleet.models.interpolate.minterpolate import MInterpolate

INTERPOLATORS = ("dis", "minterpolate")


def load_interpolator(name: str = "dis") -> Interpolator:
    if name == "dis":
        return DISInterpolator()
    if name == "minterpolate":
        return MInterpolate()
    raise InputError(f"unknown interpolator {name!r}; choose one of {', '.join(INTERPOLATORS)}")


__all__ = ["INTERPOLATORS", "Interpolator", "double_rate", "load_interpolator"]
