"""ABR ladder planning (pure): which renditions to make from a source of a given size.

A rung names the *short side* of the picture (720 → 1280×720 for landscape, 720×1280 for portrait), so
portrait and landscape sources get the same ladder. Rungs above the source are skipped (upscaling is the
enhance task's job, not the encoder's); a source below every rung gets one rendition at its own size so
every video has at least one delivery encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from framefleet.config import DEFAULT_LADDER

# Peak-bitrate cap of an H.264 rendition at 1920×1080; other sizes scale with pixels^0.75 (bits per pixel
# fall as resolution grows). Gives ~5000/2700/1500/950 kbps for 1080/720/480/360 — close to the
# published ladders of the big streaming services. AV1 needs ~60% of that for the same quality.
_H264_KBPS_AT_1080P = 5000
_CODEC_EFFICIENCY = {"h264": 1.0, "av1": 0.6}


@dataclass(frozen=True)
class Rung:
    name: str  # "720p"
    width: int
    height: int
    maxrate_kbps: int
    bufsize_kbps: int


def _even(x: float) -> int:
    return max(2, round(x / 2.0) * 2)


def rung_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Output size with the given short side, aspect ratio kept, both sides even (yuv420p needs it)."""
    if width >= height:
        return _even(width * short_side / height), _even(short_side)
    return _even(short_side), _even(height * short_side / width)


def maxrate_kbps(width: int, height: int, codec: str = "h264") -> int:
    scale: float = (width * height / (1920 * 1080)) ** 0.75
    kbps = _H264_KBPS_AT_1080P * scale * _CODEC_EFFICIENCY.get(codec, 1.0)
    return max(100, round(kbps / 50.0) * 50)


def plan_ladder(
    width: int,
    height: int,
    rungs: Sequence[int] = DEFAULT_LADDER,
    codec: str = "h264",
    source_kbps: int | None = None,
) -> tuple[list[Rung], list[int]]:
    """Return (renditions to make, tallest first; rungs skipped because they exceed the source).

    With `source_kbps`, no rendition may peak above the source's own bitrate: re-encoding cannot add
    information, so spending more bits than the source did only wastes bandwidth.
    """
    short = min(width, height)
    keep = sorted({r for r in rungs if r <= short}, reverse=True)
    skipped = sorted({r for r in rungs if r > short}, reverse=True)
    if not keep:
        keep = [short - short % 2]
    planned = []
    for r in keep:
        w, h = rung_size(width, height, r)
        cap = maxrate_kbps(w, h, codec)
        if source_kbps:
            cap = max(100, min(cap, source_kbps))
        planned.append(Rung(name=f"{r}p", width=w, height=h, maxrate_kbps=cap, bufsize_kbps=2 * cap))
    return planned, skipped
