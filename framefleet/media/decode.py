"""Decode a video into frames (numpy uint8 HWC RGB) lazily: memory stays bounded by one batch.

from framefleet.media import iter_frames, iter_batches
for frame in iter_frames("clip.mp4"):            # frame: [H, W, 3] uint8, rotation applied
    ...
for batch in iter_batches("clip.mp4", 8):        # batch: [N<=8, H, W, 3] uint8
    ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from framefleet.errors import InputError
from framefleet.media.probe import _ffmpeg_reason, check_file, open_input, rotation_of


@dataclass(frozen=True)
class TimedFrame:
    image: np.ndarray  # [H, W, 3] uint8 RGB, as displayed (rotation applied)
    pts: int  # presentation timestamp in `time_base` units, as in the source
    time: float  # seconds


def iter_timed_frames(path: str | Path, *, apply_rotation: bool = True) -> Iterator[TimedFrame]:
    """Yield every frame of the first video stream in presentation order, with its source timestamp."""
    p = check_file(path)
    with open_input(p) as container:
        if not container.streams.video:
            raise InputError(f"{p}: has no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        tb = vs.time_base
        k: int | None = None
        index = 0
        try:
            for frame in container.decode(vs):
                if k is None:
                    k = rotation_of(frame) // 90 if apply_rotation else 0
                image = frame.to_ndarray(format="rgb24")  # [H, W, 3]
                if k:
                    image = np.ascontiguousarray(np.rot90(image, k))  # [W, H, 3] for 90/270
                pts = int(frame.pts) if frame.pts is not None else index
                yield TimedFrame(image=image, pts=pts, time=float(pts * tb) if tb else float(index))
                index += 1
        except av.FFmpegError as e:
            raise InputError(
                f"{p}: corrupt or truncated: decoding failed after frame {index}: {_ffmpeg_reason(e)}"
            ) from None


def iter_frames(path: str | Path, *, apply_rotation: bool = True) -> Iterator[np.ndarray]:
    """Yield frames as [H, W, 3] uint8 RGB arrays."""
    for f in iter_timed_frames(path, apply_rotation=apply_rotation):
        yield f.image


def iter_batches(path: str | Path, batch_size: int) -> Iterator[np.ndarray]:
    """Yield [N, H, W, 3] uint8 batches (the last may be shorter): the shape every model protocol takes."""
    if batch_size < 1:
        raise InputError(f"batch_size must be ≥ 1, got {batch_size}")
    batch: list[np.ndarray] = []
    for image in iter_frames(path):
        batch.append(image)
        if len(batch) == batch_size:
            yield np.stack(batch)  # [N, H, W, 3]
            batch = []
    if batch:
        yield np.stack(batch)
