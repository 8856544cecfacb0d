"""The interpolator protocol: the frame halfway between two frames, and doubling a frame sequence."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from framefleet.errors import InputError


@runtime_checkable
class Interpolator(Protocol):
    name: str
    version: str

    def midpoint(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The frame at t = ½ between `a` and `b` ([H, W, 3] uint8 each, same shape)."""
        ...

    def params(self) -> dict[str, Any]: ...


def check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"interpolation needs two uint8 [H, W, 3] frames of one shape, got {a.shape} and {b.shape}")


def double_rate(
    interp: Interpolator, frames: Iterable[tuple[np.ndarray, float]], *, following: tuple[np.ndarray, float] | None
) -> Iterator[tuple[np.ndarray, float]]:
    """(frame, time) pairs at twice the rate: each source frame, then the midpoint to the next one.

    `following` is the frame after the last one (the first frame of the next segment, when a video is
    processed in segments) so that a segment's output ends exactly as the sequential output does; the
    very last frame of a video is followed by a copy of itself half a frame interval later. Frame count
    out = 2 × frame count in, always.
    """
    prev: tuple[np.ndarray, float] | None = None
    prev_dt = 0.0
    for image, t in frames:
        if prev is not None:
            yield prev
            yield interp.midpoint(prev[0], image), (prev[1] + t) / 2
            prev_dt = t - prev[1]
        prev = (image, t)
    if prev is None:
        return
    yield prev
    if following is not None:
        yield interp.midpoint(prev[0], following[0]), (prev[1] + following[1]) / 2
    else:
        yield prev[0].copy(), prev[1] + (prev_dt / 2 if prev_dt > 0 else 1 / 60)
