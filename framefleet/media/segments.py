"""Split a video at keyframes into N segments and join segments back, both by stream copy.

Segments keep the source's timestamps (segment k starts at its keyframe's time, not at 0), so joining
is a plain concatenation and a segment processed frame-for-frame (same count, same timestamps) joins
back into a video with exactly the source's timing. Audio packets go to the segment whose time span
holds them, so the joined audio is the source's, packet for packet.

    from framefleet.media import split_video, join_segments
    parts = split_video("in.mp4", "parts/", 4)     # -> [Path("parts/seg-000.mp4"), ...]
    join_segments(parts, "joined.mp4")
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from framefleet.errors import InputError, MediaError
from framefleet.media.probe import _ffmpeg_reason, check_file, open_input, open_output


def keyframe_times(path: str | Path) -> list[Fraction]:
    """Presentation times (seconds, exact) of the video stream's keyframes, ascending."""
    p = check_file(path)
    with open_input(p) as c:
        if not c.streams.video:
            raise InputError(f"{p}: has no video stream")
        vs = c.streams.video[0]
        return sorted(pkt.pts * vs.time_base for pkt in c.demux(vs) if pkt.is_keyframe and pkt.pts is not None)


def choose_cuts(keyframes: Sequence[Fraction], n: int) -> list[Fraction]:
    """Pick up to n-1 cut times among keyframes (never the first), nearest to equal-length segments."""
    if n < 1:
        raise InputError(f"segment count must be ≥ 1, got {n}")
    if len(keyframes) < 2 or n == 1:
        return []
    start, end = keyframes[0], keyframes[-1]
    cuts: list[Fraction] = []
    candidates = list(keyframes[1:])
    for i in range(1, n):
        target = start + (end - start) * Fraction(i, n)
        best = min(candidates, key=lambda t: abs(t - target), default=None)
        if best is not None and (not cuts or best > cuts[-1]):
            cuts.append(best)
            candidates = [t for t in candidates if t > best]
    return cuts


def split_video(src: str | Path, out_dir: str | Path, n: int) -> list[Path]:
    """Split `src` into at most `n` MP4 segments starting at keyframes; returns their paths in order.

    Fewer than n come back when the video has fewer keyframes than that. Segment files are written to
    `out_dir` as seg-000.mp4, seg-001.mp4, ...; on failure none of them is left behind.
    """
    p = check_file(src)
    cuts = choose_cuts(keyframe_times(p), n)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"seg-{k:03d}.mp4" for k in range(len(cuts) + 1)]
    writers: list[Any] = []
    try:
        with open_input(p) as inp:
            streams = [s for s in inp.streams if s.type in ("video", "audio")]
            vs = inp.streams.video[0]
            # A segment starts late (at its keyframe); MP4 records that delay in the movie time scale,
            # 1/1000 s by default, which would move audio by a few samples. A common multiple is exact.
            options = {"movie_timescale": str(_common_timescale(streams))}
            for path in paths:
                w = av.open(str(path), mode="w", format="mp4", options=options)
                mapping = {s.index: w.add_stream_from_template(s) for s in streams}
                writers.append((w, mapping))
            video_seg = 0
            for pkt in inp.demux(*streams):
                if pkt.dts is None:
                    continue
                if pkt.stream is vs:
                    # Decode order: a keyframe at the next cut opens the next segment (closed GOPs).
                    t = pkt.pts * vs.time_base if pkt.pts is not None else None
                    if pkt.is_keyframe and video_seg < len(cuts) and t == cuts[video_seg]:
                        video_seg += 1
                    seg = video_seg
                else:
                    t = (pkt.pts if pkt.pts is not None else pkt.dts) * pkt.time_base
                    seg = bisect.bisect_right(cuts, t)
                w, mapping = writers[seg]
                pkt.stream = mapping[pkt.stream.index]
                w.mux(pkt)
        for w, _ in writers:
            w.close()
    except BaseException as e:
        for w, _ in writers:
            with contextlib.suppress(Exception):
                w.close()
        for path in paths:
            path.unlink(missing_ok=True)
        if isinstance(e, av.FFmpegError):
            raise MediaError(f"splitting {p} failed: {_ffmpeg_reason(e)}") from None
        raise
    return paths


def join_segments(segments: Sequence[str | Path], dst: str | Path) -> None:
    """Concatenate segments (as written by `split_video`, or processed copies of them) into `dst`.

    Every segment must have the same streams and codec parameters as the first. A segment whose
    timestamps restart (e.g. re-encoded from 0) is shifted to follow the previous one.
    """
    if not segments:
        raise InputError("no segments to join")
    inputs = [check_file(s) for s in segments]
    with open_output(dst, f"joining segments into {dst} failed") as out:
        mapping: dict[int, Any] = {}
        ends: dict[int, Fraction] = {}  # per output stream index: end time (s) of the last packet muxed
        for k, path in enumerate(inputs):
            with open_input(path) as inp:
                streams = [s for s in inp.streams if s.type in ("video", "audio")]
                if k == 0:
                    mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                    first_sig = [_signature(s) for s in streams]
                elif [_signature(s) for s in streams] != first_sig:
                    raise InputError(
                        f"segment {path.name} differs from {inputs[0].name} in streams or codec parameters; "
                        "all segments must be encoded with the same settings"
                    )
                shift = _restart_shift(inp, streams, ends)
                for pkt in inp.demux(*streams):
                    if pkt.dts is None:
                        continue
                    tb = pkt.time_base
                    offset = int(shift / tb)
                    pkt.pts = None if pkt.pts is None else pkt.pts + offset
                    pkt.dts = pkt.dts + offset
                    end = (pkt.pts if pkt.pts is not None else pkt.dts) * tb + (pkt.duration or 0) * tb
                    ends[pkt.stream.index] = max(ends.get(pkt.stream.index, Fraction(0)), end)
                    pkt.stream = mapping[pkt.stream.index]
                    out.mux(pkt)


def _common_timescale(streams: Sequence[Any]) -> int:
    scale = 1
    for s in streams:
        if s.time_base is not None:
            scale = math.lcm(scale, s.time_base.denominator)
    return scale if scale < 2**31 else 90_000


def _signature(stream: Any) -> tuple[Any, ...]:
    cc = stream.codec_context
    if stream.type == "video":
        return ("video", cc.name, cc.width, cc.height, str(cc.pix_fmt))
    return ("audio", cc.name, cc.sample_rate, cc.channels)


def _restart_shift(inp: Any, streams: Sequence[Any], ends: dict[int, Fraction]) -> Fraction:
    """0 when this segment continues the timeline; else the shift that makes its video start where the
    previous segment's video ended."""
    if not ends:
        return Fraction(0)
    vs = next((s for s in streams if s.type == "video"), streams[0])
    start = (vs.start_time or 0) * vs.time_base
    prev_end = ends.get(vs.index, Fraction(0))
    return Fraction(0) if start >= prev_end - Fraction(1, 1000) else prev_end - start
