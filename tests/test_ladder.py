"""ABR ladder planning: never above the source, even sizes, aspect kept, portrait handled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framefleet.config import parse_ladder
from framefleet.errors import InputError
from framefleet.media import plan_ladder


def test_default_ladder_for_1080p_and_720p() -> None:
    rungs, skipped = plan_ladder(1920, 1080)
    assert [(r.width, r.height) for r in rungs] == [(1920, 1080), (1280, 720), (854, 480), (640, 360)]
    assert skipped == []
    rungs, skipped = plan_ladder(1280, 720)
    assert [r.name for r in rungs] == ["720p", "480p", "360p"] and skipped == [1080]
    caps = [r.maxrate_kbps for r in rungs]
    assert caps == sorted(caps, reverse=True)


def test_portrait_rung_names_the_short_side() -> None:
    rungs, _ = plan_ladder(1080, 1920, [720])
    assert (rungs[0].width, rungs[0].height) == (720, 1280)


def test_source_below_every_rung_gets_one_rendition_at_its_size() -> None:
    rungs, skipped = plan_ladder(176, 144)
    assert [(r.width, r.height) for r in rungs] == [(176, 144)] and skipped == [1080, 720, 480, 360]


def test_source_bitrate_caps_rungs() -> None:
    rungs, _ = plan_ladder(1280, 720, [720, 360], source_kbps=1000)
    assert all(r.maxrate_kbps <= 1000 for r in rungs)


RUNGS = [2160, 1440, 1080, 720, 540, 480, 360, 240, 144]


@given(
    w=st.integers(16, 8000),
    h=st.integers(16, 8000),
    rungs=st.lists(st.sampled_from(RUNGS), min_size=1, max_size=6),
)
def test_ladder_properties(w: int, h: int, rungs: list[int]) -> None:
    planned, skipped = plan_ladder(w, h, rungs)
    assert planned
    for r in planned:
        assert r.width % 2 == 0 and r.height % 2 == 0
        assert min(r.width, r.height) <= min(w, h)  # never above the source
        assert abs(r.width / r.height - w / h) < 0.05 * (w / h) + 2 / min(r.width, r.height)
    assert all(s > min(w, h) for s in skipped)


def test_parse_ladder() -> None:
    assert parse_ladder("720,1080p, 480") == (1080, 720, 480)
    for bad in ("", "abc", "721", "0", "-360"):
        with pytest.raises(InputError, match=r"rung|ladder"):
            parse_ladder(bad)
