"""Rollout of a one-day campaign by time zone (pure: no I/O, the clock passed in as dates and instants).

Each recipient's video must be visible from the first instant of the campaign date in the recipient's own
time zone, and never before. Two things happen, and this module plans both:

- **Opening** (`opens_at`): the instant the local date begins in each zone (zoneinfo: DST and half- or
  quarter-hour offsets included). The delivery endpoint refuses a video before it; nothing else may.
- **Release waves**: pushing the rendered videos to the delivery region that serves the zone (CDN prefill,
  cache warm-up, notification fan-out) costs delivery capacity, on top of the region's ordinary traffic. Every
  video of a zone must be released before the zone opens, no earlier than when the renders are ready, and the
  added load must keep each region under its capacity. The plan spreads each zone's videos over the
  15-minute slots of its window, always into the slot whose region is least loaded (baseline + waves
  already planned, as a share of capacity), so waves land in off-peak hours. Zones are planned in the order
  they open (earliest deadline first), since they have the least choice.

Units: capacity and baseline are deliveries per hour (the baseline by UTC hour of day, 24 values); a video's
release costs `cost_per_video` deliveries. Slots are 15 minutes, the finest offset step of real zones.

    plan = plan_rollout({"Asia/Kolkata": 1_000_000, "Europe/Paris": 2_000_000}, {"Asia/Kolkata": "ap",
                        "Europe/Paris": "eu"}, regions, date(2027, 2, 4), ready_at=datetime(2027, 2, 3, tzinfo=UTC))
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SLOT = timedelta(minutes=15)
SLOTS_PER_HOUR = 4


@dataclass(frozen=True)
class DeliveryRegion:
    name: str
    capacity_per_hour: float  # deliveries per hour the region can serve in all
    baseline_per_hour: tuple[float, ...]  # its ordinary traffic by UTC hour of day (24 values)

    def __post_init__(self) -> None:
        if not math.isfinite(self.capacity_per_hour) or self.capacity_per_hour <= 0:
            raise ValueError(f"region {self.name!r}: capacity_per_hour must be a positive number")
        if len(self.baseline_per_hour) != 24 or any(not math.isfinite(b) or b < 0 for b in self.baseline_per_hour):
            raise ValueError(f"region {self.name!r}: baseline_per_hour must be 24 non-negative numbers (UTC hours)")


@dataclass(frozen=True)
class Wave:
    zone: str
    region: str
    start: datetime  # UTC; the wave runs for one 15-minute slot
    count: int

    @property
    def end(self) -> datetime:
        return self.start + SLOT

    def to_dict(self) -> dict[str, object]:
        return {"zone": self.zone, "region": self.region, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "count": self.count}  # fmt: skip


@dataclass
class RolloutPlan:
    date: date
    opens_at: dict[str, datetime]  # zone -> UTC instant its local date begins
    waves: list[Wave]
    slots: list[datetime]  # UTC slot starts covering every wave
    added_per_hour: dict[str, list[float]]  # region -> the waves' load per slot, as a rate per hour
    baseline_per_hour: dict[str, list[float]]  # region -> baseline per slot
    capacity_per_hour: dict[str, float]
    unplaced: dict[str, int] = field(default_factory=dict)  # zone -> videos that fit nowhere (infeasible)

    @property
    def feasible(self) -> bool:
        return not self.unplaced

    def peak_utilization(self, region: str) -> float:
        cap = self.capacity_per_hour[region]
        return max(
            ((b + a) / cap for b, a in zip(self.baseline_per_hour[region], self.added_per_hour[region], strict=True)),
            default=0.0,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "date": self.date.isoformat(),
            "feasible": self.feasible,
            "unplaced": self.unplaced,
            "opens_at": {z: t.isoformat() for z, t in sorted(self.opens_at.items(), key=lambda kv: kv[1])},
            "videos": sum(w.count for w in self.waves),
            "waves": [w.to_dict() for w in self.waves],
            "peak_utilization": {r: round(self.peak_utilization(r), 4) for r in self.capacity_per_hour},
            "baseline_peak_utilization": {
                r: round(max(self.baseline_per_hour[r], default=0.0) / c, 4) for r, c in self.capacity_per_hour.items()
            },
        }


def local_day_start(day: date, zone: str) -> datetime:
    """The first instant (UTC) whose local date in `zone` is `day`. Local midnight, except where a DST change
    skips midnight: then the first local time that exists on that date."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}; give an IANA name like 'Europe/Paris'") from None
    t = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    # a skipped midnight maps to a time that may belong to the day before; step to the date's first instant
    while t.astimezone(tz).date() < day:
        t += timedelta(minutes=15)
    while (t - timedelta(minutes=15)).astimezone(tz).date() == day:
        t -= timedelta(minutes=15)
    return t


def _floor_slot(t: datetime) -> datetime:
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


def plan_rollout(
    recipients_by_zone: Mapping[str, int],
    zone_region: Mapping[str, str],
    regions: Sequence[DeliveryRegion],
    day: date,
    *,
    ready_at: datetime,
    cost_per_video: float = 1.0,
    target_utilization: float = 0.9,
) -> RolloutPlan:
    """Release waves for every zone's videos between `ready_at` (UTC: when the renders are done) and the
    zone's opening, each region kept at or under `target_utilization` of its capacity where possible.
    Videos that cannot fit anywhere in their window are reported in `unplaced` (the plan is then infeasible:
    render earlier, add delivery capacity, or lower the cost per video)."""
    if ready_at.tzinfo is None:
        raise ValueError("ready_at must be timezone-aware (UTC)")
    if not 0 < target_utilization <= 1:
        raise ValueError("target_utilization must be in (0, 1]")
    by_name = {r.name: r for r in regions}
    for zone, n in recipients_by_zone.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"zone {zone!r}: recipients must be a whole number ≥ 0, got {n!r}")
        if zone_region.get(zone) not in by_name:
            raise ValueError(f"zone {zone!r} has no delivery region; map it to one of {', '.join(by_name)}")
    opens = {z: local_day_start(day, z) for z in recipients_by_zone}
    first = _floor_slot(ready_at.astimezone(UTC))
    last = max(opens.values(), default=first)
    slots = [first + k * SLOT for k in range(max(0, math.ceil((last - first) / SLOT)))]
    index = {s: k for k, s in enumerate(slots)}
    base = {r.name: [r.baseline_per_hour[s.hour] for s in slots] for r in regions}
    added = {r.name: [0.0] * len(slots) for r in regions}
    waves: list[Wave] = []
    unplaced: dict[str, int] = {}
    for zone in sorted(recipients_by_zone, key=lambda z: (opens[z], z)):
        n = recipients_by_zone[zone]
        region = by_name[zone_region[zone]]
        # slots that end by the opening and start no earlier than readiness (a slot must lie wholly inside)
        allowed = [index[s] for s in slots if s >= ready_at and s + SLOT <= opens[zone]]
        left = _fill(zone, region, n, allowed, slots, base[region.name], added[region.name], waves,
                     cost_per_video, target_utilization)  # fmt: skip
        if left:
            unplaced[zone] = left
    waves.sort(key=lambda w: (w.start, w.zone))
    return RolloutPlan(day, opens, waves, slots, added, base, {r.name: r.capacity_per_hour for r in regions}, unplaced)


def _fill(
    zone: str,
    region: DeliveryRegion,
    n: int,
    allowed: list[int],
    slots: list[datetime],
    base: list[float],
    added: list[float],
    waves: list[Wave],
    cost: float,
    target: float,
) -> int:
    """Water-filling: repeatedly give a chunk to the allowed slot with the lowest utilisation, never past
    `target`. Returns how many videos did not fit."""
    if n == 0:
        return 0
    cap = region.capacity_per_hour
    per_video = cost * SLOTS_PER_HOUR  # one video in a 15-minute slot, as a rate per hour
    room = {k: max(0, math.floor((target * cap - base[k] - added[k]) / per_video + 1e-9)) for k in allowed}
    heap = [((base[k] + added[k]) / cap, k) for k in allowed if room[k] > 0]
    heapq.heapify(heap)
    given: dict[int, int] = {}
    chunk = max(1, n // max(1, 16 * len(allowed)))  # bounded work: ~16 rounds per slot at most
    left = n
    while left and heap:
        _, k = heapq.heappop(heap)
        take = min(chunk, left, room[k])
        given[k] = given.get(k, 0) + take
        added[k] += take * per_video
        room[k] -= take
        left -= take
        if room[k] > 0:
            heapq.heappush(heap, ((base[k] + added[k]) / cap, k))
    waves.extend(Wave(zone, region.name, slots[k], c) for k, c in sorted(given.items()))
    return left


# Where a zone's viewers are served from, by the zone's area; a deployment with its own map passes it instead.
REGION_BY_AREA = {"America": "americas", "Atlantic": "americas", "Europe": "emea", "Africa": "emea",
                  "Asia": "apac", "Australia": "apac", "Pacific": "apac", "Indian": "apac"}  # fmt: skip
# The evening peak of each default region, in UTC hours (about 20:00 local in its biggest markets).
PEAK_UTC = {"americas": 1, "emea": 19, "apac": 13, "other": 12}


def region_of(zone: str) -> str:
    return REGION_BY_AREA.get(zone.split("/", 1)[0], "other")


def diurnal(peak_utc_hour: int, mean: float, swing: float = 0.6) -> tuple[float, ...]:
    """Ordinary traffic by UTC hour: a day-night cosine around `mean`, highest at `peak_utc_hour`."""
    return tuple(mean * (1 + swing * math.cos(2 * math.pi * (h - peak_utc_hour) / 24)) for h in range(24))


def default_regions(
    recipients_by_zone: Mapping[str, int], capacity_per_hour: float | None = None
) -> list[DeliveryRegion]:
    """Regions for the zones given, with a diurnal baseline. Without a capacity, each region is sized so its
    ordinary peak uses 70% of it and its baseline averages one delivery per recipient per two hours."""
    per_region: dict[str, int] = {}
    for zone, n in recipients_by_zone.items():
        per_region[region_of(zone)] = per_region.get(region_of(zone), 0) + n
    out = []
    for name, n in sorted(per_region.items()):
        mean = max(n, 100) / 2.0  # a floor so a tiny campaign's slots can hold whole videos
        baseline = diurnal(PEAK_UTC[name], mean)
        out.append(DeliveryRegion(name, capacity_per_hour or max(baseline) / 0.7, baseline))
    return out


def plot_plan(plan: RolloutPlan, out: str) -> None:
    """The planned load per region (baseline and waves stacked) against capacity, one panel per region."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(plan.capacity_per_hour)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.6 * len(names)), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], names, strict=True):
        base, added = plan.baseline_per_hour[r], plan.added_per_hour[r]
        ax.fill_between(plan.slots, 0, base, step="post", color="tab:gray", alpha=0.5, label="baseline")
        total = [b + a for b, a in zip(base, added, strict=True)]
        ax.fill_between(plan.slots, base, total, step="post", color="tab:orange", alpha=0.8, label="release waves")
        ax.axhline(plan.capacity_per_hour[r], color="tab:red", lw=1, label="capacity")
        ax.set_ylabel(f"{r}\ndeliveries/h")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("UTC")
    fig.suptitle(f"campaign rollout for {plan.date.isoformat()}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


__all__ = [
    "DeliveryRegion",
    "RolloutPlan",
    "Wave",
    "default_regions",
    "diurnal",
    "local_day_start",
    "plan_rollout",
    "plot_plan",
    "region_of",
]
