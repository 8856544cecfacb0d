"""One segment of an enhancement: decode → upscale → (interpolate) → encode, video only.

The same function runs in-process (one segment = the whole video), in local worker processes and in
Ray tasks. A segment's output keeps its source timestamps, so segments join back into exactly the
frames and timestamps sequential processing gives; `following` (the first frame of the next segment)
lets the last interpolated frame of a segment match too.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from framefleet.media.decode import iter_timed_frames
from framefleet.media.encode import EncodeSettings, encode_frames
from framefleet.models.interpolate import Interpolator, double_rate, load_interpolator
from framefleet.models.upscale import Upscaler, load_upscaler
from framefleet.models.upscale.blend import BlendedUpscaler


@dataclass(frozen=True)
class ModelSpec:
    """What to run, as plain data (it crosses process and machine boundaries)."""

    model: str
    scale: int
    backend: str | None = None
    device: str = "auto"
    weights: str | None = None
    cache_dir: str | None = None
    interpolator: str | None = None  # None: keep the frame rate
    batch: int = 4
    blend: tuple[float, float] | None = None  # (coarse, fine) weights against Lanczos, fitted on the clip (blend.py)


@dataclass(frozen=True)
class SegmentJob:
    spec: ModelSpec
    encode: EncodeSettings
    rate: Fraction  # output frame rate (the source's, doubled when interpolating)
    rotation: int  # degrees, from the source: segments may lose the display matrix in the split
    following: np.ndarray | None = field(default=None, compare=False)  # next segment's first frame (source)
    following_time: float | None = None


@functools.cache
def _upscaler(spec: ModelSpec) -> Upscaler:
    if spec.blend is not None:
        return BlendedUpscaler(_upscaler(dataclasses.replace(spec, blend=None)), spec.blend)
    return load_upscaler(
        spec.model,
        scale=spec.scale,
        backend=spec.backend,
        device=spec.device,
        weights=spec.weights,
        cache_dir=spec.cache_dir,
    )


@functools.cache
def _interpolator(name: str) -> Interpolator:
    return load_interpolator(name)


def _upscaled(job: SegmentJob, src: Path, on_frame: Callable[[int], None] | None) -> Iterator[tuple[np.ndarray, float]]:
    up = _upscaler(job.spec)
    k = job.rotation // 90
    batch: list[np.ndarray] = []
    times: list[float] = []
    done = 0

    def flush() -> Iterator[tuple[np.ndarray, float]]:
        nonlocal done
        hi = up(np.stack(batch))  # [n, sH, sW, 3]
        yield from zip(hi, times, strict=True)
        done += len(batch)
        if on_frame is not None:
            on_frame(len(batch))
        batch.clear()
        times.clear()

    for f in iter_timed_frames(src, apply_rotation=False):
        batch.append(np.ascontiguousarray(np.rot90(f.image, k)) if k else f.image)  # [H, W, 3] as displayed
        times.append(f.time)
        if len(batch) == job.spec.batch:
            yield from flush()
    if batch:
        yield from flush()


def process_segment(job: SegmentJob, src: Path, dst: Path, on_frame: Callable[[int], None] | None = None) -> int:
    """Enhance the video frames of `src` into `dst` (MP4, video only); returns frames written."""
    frames: Iterator[tuple[np.ndarray, float]] = _upscaled(job, src, on_frame)
    if job.spec.interpolator is not None:
        following = None
        if job.following is not None and job.following_time is not None:
            following = (_upscaler(job.spec)(job.following[None])[0], job.following_time)
        frames = double_rate(_interpolator(job.spec.interpolator), frames, following=following)
    times: list[float] = []

    def images() -> Iterator[np.ndarray]:
        for image, t in frames:
            times.append(t)
            yield image

    # encode_frames pulls a frame before it needs its timestamp, so the list is always one ahead.
    return encode_frames(images(), dst, fps=job.rate, timestamps=_lazy(times), settings=job.encode)


def _lazy(times: list[float]) -> Iterator[float]:
    i = 0
    while True:
        yield times[i]
        i += 1


def process_segment_bytes(job: SegmentJob, data: bytes) -> bytes:
    """`process_segment` on bytes in, bytes out: for Ray tasks on machines that share no filesystem."""
    with tempfile.TemporaryDirectory(prefix="framefleet-seg-") as d:
        src, dst = Path(d) / "in.mp4", Path(d) / "out.mp4"
        src.write_bytes(data)
        process_segment(job, src, dst)
        return dst.read_bytes()


def init_worker(threads: int, counter: object | None) -> None:
    """Process-pool initializer: share the cores among workers, count frames for the progress bar, and stop
    when the parent is gone (a SIGKILL runs no handler there, and an orphan would go on burning a core)."""
    os.environ["FRAMEFLEET_THREADS"] = str(threads)
    _exit_with_parent(os.getppid())
    import cv2

    cv2.setNumThreads(threads)
    global _COUNTER
    _COUNTER = counter


_COUNTER: object | None = None


def _exit_with_parent(parent: int, period_s: float = 1.0) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def process_segment_in_pool(job: SegmentJob, src: str, dst: str) -> int:
    counter = _COUNTER

    def tick(n: int) -> None:
        if counter is not None:
            with counter.get_lock():  # type: ignore[attr-defined]
                counter.value += n  # type: ignore[attr-defined]

    return process_segment(job, Path(src), Path(dst), tick)
