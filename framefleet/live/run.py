"""A whole video file through one live session: `framefleet live run IN.mp4 --prompt "thermal" -o OUT.mp4`.

    from framefleet.live.engine import LiveEngine
    from framefleet.live.run import parse_switches, run_file
    report = run_file(LiveEngine.load(), "in.mp4", "out.mp4", "pencil sketch",
                      parse_switches(["2.5:warm sunset"]), progress=False)

Every frame is decoded (media layer), stepped through the same `LiveSession` in order (so the output has the
history a camera stream would have), and encoded to H.264 MP4 with the source's timestamps and its audio.
Nothing is dropped: a file is not a live source, the next frame waits for the model. The output is written
to a hidden file beside `output` and renamed at the end, so a failure leaves no half-written video.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framefleet.errors import InputError
from framefleet.live.engine import MAX_SIDE, MIN_SIDE, LiveEngine

MAX_SWITCH_PROMPT_CHARS = 20_000


def _look(engine: LiveEngine, prompt: str) -> str | None:
    return engine.encode.match(prompt).look


def parse_switches(specs: Sequence[str]) -> list[tuple[float, str]]:
    """`SECONDS:PROMPT` strings → [(seconds, prompt)] sorted by time. The prompt may be empty (pass-through)."""
    switches: list[tuple[float, str]] = []
    for spec in specs:
        head, sep, prompt = spec.partition(":")
        try:
            seconds = float(head)
        except ValueError:
            seconds = math.nan
        if not sep or not math.isfinite(seconds):
            raise InputError(
                f"--switch-at {spec!r}: give SECONDS:PROMPT, e.g. --switch-at '2.5:warm sunset' "
                "(the prompt from that time on; an empty prompt passes the frames through)"
            )
        if seconds < 0:
            raise InputError(f"--switch-at {spec!r}: the time must be ≥ 0 s from the start of the video")
        if len(prompt) > MAX_SWITCH_PROMPT_CHARS:
            raise InputError(f"--switch-at: a prompt of {len(prompt):,} characters; keep it under 20,000")
        switches.append((seconds, prompt))
    return sorted(switches, key=lambda s: s[0])


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
        "mean": round(float(a.mean()), 3),
    }


def _check_input(input_path: str | Path, switches: Sequence[tuple[float, str]]) -> Any:
    from framefleet.media.probe import probe

    info = probe(input_path, verify=False)
    if info.kind != "video" or info.video is None:
        raise InputError(f"{input_path}: an image, not a video; give a video file (MP4, MOV, WebM, ...)")
    v = info.video
    if not (MIN_SIDE <= v.width <= MAX_SIDE and MIN_SIDE <= v.height <= MAX_SIDE):
        raise InputError(
            f"{input_path}: frames are {v.width}×{v.height}; each side must be {MIN_SIDE}–{MAX_SIDE} px: "
            "scale the video first (e.g. `framefleet encode ASSET --ladder 720`)"
        )
    late = [s for s, _ in switches if v.duration and s >= v.duration]
    if late:
        raise InputError(f"--switch-at {late[0]:g}: the video is {v.duration:.2f} s long; give a time before its end")
    return info


def run_file(
    engine: LiveEngine,
    input_path: str | Path,
    output_path: str | Path,
    prompt: str,
    switches: Sequence[tuple[float, str]],
    progress: bool,
) -> dict[str, Any]:
    """Transform `input_path` into `output_path` (MP4, H.264); returns the report (see the module docstring).

    `switches`: (seconds from the first frame, prompt) pairs; each takes effect from the first frame at or after
    its time. Report: output, frames, dropped (always 0: every frame of a file is processed), fps, size,
    latency_ms {p50, p99, max, mean} of the model step, prompts [{prompt, from_frame, from_s, look}]
    (look: the trained look the prompt matched, or null), wall_s."""
    from framefleet._cli import progress_bars
    from framefleet._fs import scratch_file
    from framefleet.media.decode import iter_timed_frames
    from framefleet.media.encode import encode_frames

    t_start = time.perf_counter()
    out = Path(output_path)
    if not out.resolve().parent.is_dir():
        raise InputError(f"-o {out}: its folder does not exist; create it first")
    if out.resolve() == Path(input_path).resolve():
        raise InputError(f"-o {out}: the output must not overwrite the input; give another file name")
    info = _check_input(input_path, switches)
    # every prompt embedded before the first frame: a bad prompt fails early, and no frame waits for MiniLM
    conds = {p: engine.encode(p) for p in [prompt, *(s[1] for s in switches)]}
    session = engine.session(prompt)
    pending = list(switches)
    applied: list[dict[str, Any]] = [{"prompt": prompt, "from_frame": 0, "from_s": 0.0, "look": _look(engine, prompt)}]
    latencies: list[float] = []
    times: list[float] = []

    def looks(update: Any) -> Iterator[np.ndarray]:
        t0: float | None = None
        for i, tf in enumerate(iter_timed_frames(input_path)):
            t0 = tf.time if t0 is None else t0
            t = max(0.0, tf.time - t0)
            while pending and pending[0][0] <= t + 1e-9:
                text = pending.pop(0)[1]
                session.set_cond(conds[text], text)
                applied.append({"prompt": text, "from_frame": i, "from_s": round(t, 4), "look": _look(engine, text)})
            image, ms = session.step(tf.image)
            latencies.append(ms)
            times.append(t)
            if update is not None:
                update("live", i + 1, info.video.frames)
            yield image

    with progress_bars(progress) as update, scratch_file(out.resolve().parent, ".mp4") as tmp:
        n = encode_frames(
            looks(update),
            tmp,
            fps=info.video.fps or 25.0,
            timestamps=_lazy(times),
            audio_from=input_path if info.audio is not None else None,
        )
        if info.video.frames and n < info.video.frames:
            raise InputError(
                f"{input_path}: truncated: the header declares {info.video.frames} frames but only {n} decode; "
                "give the complete file"
            )
        os.replace(tmp, out)
    return {
        "output": str(out),
        "input": str(input_path),
        "frames": n,
        "dropped": 0,
        "fps": round(float(info.video.fps), 3),
        "size": [info.video.width, info.video.height],
        "latency_ms": _percentiles(latencies),
        "prompts": applied,
        "wall_s": round(time.perf_counter() - t_start, 3),
    }


def _lazy(times: list[float]) -> Iterator[float]:
    """The timestamps of frames already produced: `encode_frames` asks for frame n's time after taking frame n."""
    i = 0
    while True:
        yield times[i]
        i += 1
