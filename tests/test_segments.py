"""Split at keyframes → join by stream copy: same frames, same timestamps, same audio, decodes cleanly."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from framefleet.errors import InputError
from framefleet.media import (
    choose_cuts,
    iter_timed_frames,
    join_segments,
    keyframe_times,
    plan_ladder,
    probe,
    sample_path,
    split_video,
    transcode,
)


def _packets(path: Path, kind: str) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(*streams) if p.size]


def test_split_join_roundtrip_real_clip(tmp_path: Path) -> None:
    src = sample_path("bikes")
    parts = split_video(src, tmp_path / "parts", 4)
    assert len(parts) == 4
    seg_frames = [probe(p).video.frames for p in parts]  # type: ignore[union-attr]
    assert sum(seg_frames) == 250 and min(seg_frames) > 0
    joined = tmp_path / "joined.mp4"
    join_segments(parts, joined)
    a, b = probe(src), probe(joined)  # probe(verify=True) decodes every frame: "decodes cleanly"
    assert b.video is not None and a.video is not None
    assert abs(b.video.frames - a.video.frames) <= 1
    assert abs(b.duration - a.duration) <= 1 / a.video.fps
    # Stronger than the ±1 frame bound: every timestamp and every compressed frame is identical.
    assert [f.pts for f in iter_timed_frames(joined)] == [f.pts for f in iter_timed_frames(src)]
    assert sorted(_packets(joined, "video")) == sorted(_packets(src, "video"))


def test_split_join_keeps_audio(tmp_path: Path) -> None:
    # bigbuckbunny has a single keyframe; its 360p rendition has one every 2 s and carries the 5.1 AAC track.
    rendition = tmp_path / "bbb-360.mp4"
    transcode(sample_path("bigbuckbunny"), rendition, plan_ladder(1280, 720, [360])[0][0])
    parts = split_video(rendition, tmp_path / "parts", 3)
    assert len(parts) == 3
    assert all(probe(p).audio is not None for p in parts)
    joined = tmp_path / "joined.mp4"
    join_segments(parts, joined)
    assert probe(joined).video.frames == 132  # type: ignore[union-attr]
    assert _packets(joined, "audio") == _packets(rendition, "audio")
    assert sorted(_packets(joined, "video")) == sorted(_packets(rendition, "video"))


def test_join_shifts_segments_that_restart_at_zero(tmp_path: Path) -> None:
    seg = tmp_path / "seg.mp4"
    transcode(sample_path("carphone"), seg, plan_ladder(176, 144, [144])[0][0])
    joined = tmp_path / "twice.mp4"
    join_segments([seg, seg], joined)  # the second copy starts at 0 again and must follow the first
    info = probe(joined)
    assert info.video is not None and info.video.frames == 240
    assert info.duration == pytest.approx(2 * probe(seg).duration, abs=0.05)
    times = [f.time for f in iter_timed_frames(joined)]
    assert all(b > a for a, b in itertools.pairwise(times))


def test_join_refuses_mismatched_segments(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    transcode(sample_path("carphone"), a, plan_ladder(176, 144, [144])[0][0])
    transcode(sample_path("carphone"), b, plan_ladder(176, 144, [72])[0][0])
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="differs"):
        join_segments([a, b], out)
    assert not out.exists()  # nothing half-written
    with pytest.raises(InputError, match="no segments"):
        join_segments([], out)


def test_split_with_one_keyframe_gives_one_segment(tmp_path: Path) -> None:
    assert len(keyframe_times(sample_path("carphone"))) == 1
    parts = split_video(sample_path("carphone"), tmp_path, 4)
    assert len(parts) == 1 and probe(parts[0]).video.frames == 120  # type: ignore[union-attr]


@given(
    keys=st.lists(st.integers(0, 10_000), min_size=1, max_size=60, unique=True).map(sorted),
    n=st.integers(1, 12),
)
def test_choose_cuts_properties(keys: list[int], n: int) -> None:
    kf = [Fraction(k, 25) for k in keys]
    cuts = choose_cuts(kf, n)
    assert len(cuts) <= n - 1
    assert all(c in kf and c != kf[0] for c in cuts)  # only keyframes, never the first
    assert cuts == sorted(set(cuts))  # strictly increasing: every segment non-empty
    if len(kf) >= n:
        assert len(cuts) >= min(n - 1, 1) if len(kf) > 1 else cuts == []


def test_choose_cuts_rejects_zero() -> None:
    with pytest.raises(InputError):
        choose_cuts([Fraction(0)], 0)
