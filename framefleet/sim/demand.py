"""Demand over simulated time: a diurnal curve in each region's local time, surges, outages.

The day is a cosine, `mean · (1 + (peak_to_mean − 1) · cos(2π (h − peak_hour) / 24))`, in local hours h,
so its mean over a day is exactly `mean` and its peak is `peak_to_mean · mean`.
"""

from __future__ import annotations

import math

from framefleet.sim.scenario import Scenario


def local_hour(scenario: Scenario, utc_offset_h: float, t: float) -> float:
    return (scenario.start_utc_h + t / 3600.0 + utc_offset_h) % 24.0


def diurnal_factor(scenario: Scenario, utc_offset_h: float, t: float) -> float:
    d = scenario.demand
    h = local_hour(scenario, utc_offset_h, t)
    return max(0.0, 1.0 + (d.peak_to_mean - 1.0) * math.cos(2 * math.pi * (h - d.peak_hour) / 24.0))


def surge_factor(scenario: Scenario, region: str, t: float) -> float:
    f = 1.0
    for e in scenario.events:
        if e.kind == "surge" and e.region == region and e.start_s <= t < e.end_s:
            f *= e.factor
    return f


def in_outage(scenario: Scenario, region: str, t: float) -> bool:
    return any(e.kind == "outage" and e.region == region and e.start_s <= t < e.end_s for e in scenario.events)


def rate_rps(scenario: Scenario, region: str, t: float) -> float:
    """Fresh requests per second from `region` at simulated time t (interactive and batch together)."""
    r = next(x for x in scenario.regions if x.name == region)
    base = scenario.demand.mean_rps * scenario.shares[region]
    return base * diurnal_factor(scenario, r.utc_offset_h, t) * surge_factor(scenario, region, t)


def step_edges(scenario: Scenario, step_s: float = 60.0) -> list[float]:
    """Ends of the piecewise-constant demand steps: every `step_s`, plus every event edge (where demand or
    capacity jumps), so no step straddles one; the last is the end of the run."""
    d = scenario.duration_s
    events = {t for e in scenario.events for t in (e.start_s, e.end_s) if 0 < t < d}
    return sorted({*events, *(k * step_s for k in range(1, math.ceil(d / step_s)) if k * step_s < d), d})
