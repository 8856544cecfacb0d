"""The campaign rollout plan: opening instants per zone, and property tests of the release waves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framefleet.campaign.rollout import SLOT, DeliveryRegion, local_day_start, plan_rollout

DAY = date(2027, 3, 28)  # Europe's spring DST change: Paris skips 02:00-03:00 that night
ZONES = {
    "Pacific/Kiritimati": "ap",  # UTC+14: the first to open
    "Asia/Kathmandu": "ap",  # +5:45
    "Asia/Kolkata": "ap",  # +5:30
    "Europe/Paris": "eu",
    "Europe/London": "eu",
    "America/Sao_Paulo": "am",
    "America/New_York": "am",
    "America/St_Johns": "am",  # -3:30 / -2:30
    "Pacific/Pago_Pago": "am",  # UTC-11: the last
}
DIURNAL = tuple(float(x) for x in (30, 25, 20, 18, 18, 22, 35, 50, 65, 75, 80, 82, 85, 85, 83, 80, 78, 80,
                                   85, 90, 88, 75, 55, 40))  # fmt: skip


def regions(scale: float = 1.0) -> list[DeliveryRegion]:
    shift = {"ap": 0, "eu": 5, "am": 12}  # each region's daily peak at its own afternoon (UTC hours)
    return [DeliveryRegion(r, 100.0 * scale, tuple(DIURNAL[(h - s) % 24] for h in range(24))) for r, s in shift.items()]


def test_opening_is_the_first_local_instant_of_the_date() -> None:
    assert local_day_start(DAY, "Europe/Paris") == datetime(2027, 3, 27, 23, 0, tzinfo=UTC)
    assert local_day_start(DAY, "Asia/Kathmandu") == datetime(2027, 3, 27, 18, 15, tzinfo=UTC)
    assert local_day_start(DAY, "Pacific/Kiritimati") == datetime(2027, 3, 27, 10, 0, tzinfo=UTC)
    # Santiago's DST ends at 00:00 on 2027-04-04 (clocks go back): midnight happens twice; the first counts
    t = local_day_start(date(2027, 4, 4), "America/Santiago")
    assert t.astimezone(ZoneInfo("America/Santiago")).date() == date(2027, 4, 4)
    assert (t - timedelta(minutes=15)).astimezone(ZoneInfo("America/Santiago")).date() == date(2027, 4, 3)
    with pytest.raises(ValueError, match="unknown time zone"):
        local_day_start(DAY, "Mars/Olympus")


def test_waves_favour_off_peak_hours() -> None:
    plan = plan_rollout({"Europe/Paris": 800}, ZONES, regions(), DAY, ready_at=datetime(2027, 3, 26, tzinfo=UTC))
    assert plan.feasible
    eu = plan.baseline_per_hour["eu"]
    placed = {w.start: w.count for w in plan.waves}
    quiet = [s for s, b in zip(plan.slots, eu, strict=True) if b <= 25 and s in placed]
    busy = [s for s, b in zip(plan.slots, eu, strict=True) if b >= 80 and s in placed]
    assert sum(placed[s] for s in quiet) > sum(placed[s] for s in busy)


def test_too_little_capacity_is_reported_not_hidden() -> None:
    plan = plan_rollout({"Europe/Paris": 10**7}, ZONES, regions(), DAY, ready_at=datetime(2027, 3, 27, tzinfo=UTC))
    assert not plan.feasible and 0 < plan.unplaced["Europe/Paris"] < 10**7
    assert max(plan.peak_utilization(r) for r in ("ap", "eu", "am")) <= 0.9 + 1e-9


def test_bad_inputs_name_the_problem() -> None:
    ready = datetime(2027, 3, 27, tzinfo=UTC)
    with pytest.raises(ValueError, match="no delivery region"):
        plan_rollout({"Asia/Tokyo": 5}, ZONES, regions(), DAY, ready_at=ready)
    with pytest.raises(ValueError, match="whole number"):
        plan_rollout({"Europe/Paris": -1}, ZONES, regions(), DAY, ready_at=ready)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_rollout({"Europe/Paris": 1}, ZONES, regions(), DAY, ready_at=datetime(2027, 3, 27))
    with pytest.raises(ValueError, match="24 non-negative"):
        DeliveryRegion("x", 10, (1.0,) * 23)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.dictionaries(st.sampled_from(sorted(ZONES)), st.integers(0, 5000), min_size=1),
    lead_h=st.integers(1, 40),
    scale=st.floats(0.3, 5.0),
    cost=st.floats(0.01, 2.0),
)
def test_plan_constraints_hold(counts: dict[str, int], lead_h: int, scale: float, cost: float) -> None:
    """Every video is accounted for; no wave starts before the renders are ready or ends after its zone
    opens; opening is the zone's local midnight of the date; no region goes over the target."""
    first_open = min(local_day_start(DAY, z) for z in counts)
    ready = first_open - timedelta(hours=lead_h)
    plan = plan_rollout(counts, ZONES, regions(scale), DAY, ready_at=ready, cost_per_video=cost)
    for zone, n in counts.items():
        released = sum(w.count for w in plan.waves if w.zone == zone)
        assert released + plan.unplaced.get(zone, 0) == n
        assert plan.opens_at[zone].astimezone(ZoneInfo(zone)).date() == DAY
        assert (plan.opens_at[zone] - SLOT).astimezone(ZoneInfo(zone)).date() < DAY
    for w in plan.waves:
        assert w.count > 0 and w.start >= ready and w.end <= plan.opens_at[w.zone]
        assert w.region == ZONES[w.zone]
    for r in plan.capacity_per_hour:
        base_peak = max(plan.baseline_per_hour[r], default=0.0) / plan.capacity_per_hour[r]
        # waves never push a slot past the target; a slot already over it by its baseline gets none
        for b, a in zip(plan.baseline_per_hour[r], plan.added_per_hour[r], strict=True):
            assert a == 0 or (b + a) / plan.capacity_per_hour[r] <= 0.9 + 1e-9
        assert plan.peak_utilization(r) <= max(0.9 + 1e-9, base_peak)


def test_the_plan_draws_its_load_curve(tmp_path: Path) -> None:
    from framefleet.campaign.rollout import plot_plan

    counts = {z: 100 for z in ZONES}
    plan = plan_rollout(counts, ZONES, regions(), DAY, ready_at=datetime(2027, 3, 26, 12, tzinfo=UTC))
    assert plan.feasible
    plot_plan(plan, str(tmp_path / "rollout.png"))
    assert (tmp_path / "rollout.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
