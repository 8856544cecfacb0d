"""Capacity of a no-queue pool (Erlang-B) and the capacity planner.

A region of N GPUs that never queues is an M/G/N/N loss system: with offered load A = λ·E[S] erlangs, the
share of arrivals that find every GPU busy is Erlang-B, whatever the service-time distribution:

    B(0) = 1;  B(k) = A·B(k−1) / (k + A·B(k−1))

Bigger pools run hotter at the same blocking (at B ≤ 1%: 8 GPUs carry 39% utilization, 128 carry 86%).
The planner sizes each region for its own diurnal peak, then the simulator checks the plan.

    framefleet capacity --daily-requests 1e9 --peak-to-mean 2 --service-time 4 --target-blocking 0.01 \
        --regions scenarios/planet-12.toml --json
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from framefleet.errors import InputError

# Erlang-B itself lives in a pure module the traffic manager imports too (serve/erlang.py); re-exported here for
# the planner's callers (and the private helpers for the tests that check the approximation against the recursion).
from framefleet.serve.erlang import EXACT_MAX_ERLANGS as EXACT_MAX_ERLANGS
from framefleet.serve.erlang import _erlang_b_normal as _erlang_b_normal
from framefleet.serve.erlang import _servers_normal as _servers_normal
from framefleet.serve.erlang import carried_erlangs as carried_erlangs
from framefleet.serve.erlang import erlang_b as erlang_b
from framefleet.serve.erlang import erlangs_at as erlangs_at
from framefleet.serve.erlang import servers_for as servers_for
from framefleet.sim.scenario import SimRegion


@dataclass(frozen=True)
class RegionPlan:
    region: str
    peak_rps: float
    erlangs: float
    gpus: int
    blocking: float  # Erlang-B at the peak with this many GPUs

    @property
    def peak_utilization(self) -> float:
        return self.erlangs * (1 - self.blocking) / self.gpus if self.gpus else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_rps": round(self.peak_rps, 3),
            "erlangs": round(self.erlangs, 2),
            "gpus": self.gpus,
            "planned_blocking": round(self.blocking, 5),
            "planned_success": round(1 - self.blocking, 5),
            "peak_utilization": round(self.peak_utilization, 4),
        }


# Beyond these the plan is no longer about a fleet that exists, and checking it by simulation would not end.
MAX_DAILY_REQUESTS = 1e13  # over a thousand requests a day for every person on Earth
MAX_SERVICE_TIME_S = 86400.0  # a day of GPU time for one request
MAX_PEAK_ERLANGS = 1e6  # a million GPUs busy at once, all regions together (the check then takes minutes)


def check_plan_inputs(
    daily_requests: float, peak_to_mean: float, service_time_s: float, target_blocking: float
) -> None:
    """The capacity command's options, each checked by name (InputError: exit 2): finite, in range, and together
    not more load than the planner (and its simulated check) can size."""
    if not (math.isfinite(daily_requests) and 0 < daily_requests <= MAX_DAILY_REQUESTS):
        raise InputError(
            f"--daily-requests must be a positive number of requests a day, at most {MAX_DAILY_REQUESTS:.0e} "
            f"(e.g. 1e9), got {daily_requests}"
        )
    if not (math.isfinite(peak_to_mean) and 1 <= peak_to_mean <= 2):
        raise InputError(f"--peak-to-mean must be in [1, 2] (a cosine day), e.g. 2, got {peak_to_mean}")
    if not (math.isfinite(service_time_s) and 0 < service_time_s <= MAX_SERVICE_TIME_S):
        raise InputError(
            f"--service-time must be the mean GPU seconds per request, > 0 and at most {MAX_SERVICE_TIME_S:.0f} "
            f"(e.g. 4), got {service_time_s}"
        )
    if not (math.isfinite(target_blocking) and 0 < target_blocking < 1):
        raise InputError(f"--target-blocking must be in (0, 1), e.g. 0.01, got {target_blocking}")
    peak = daily_requests / 86400.0 * peak_to_mean * service_time_s
    if peak > MAX_PEAK_ERLANGS:
        raise InputError(
            f"--daily-requests {daily_requests:g} at --service-time {service_time_s:g} s keeps {peak:.3g} GPUs busy "
            f"at peak, more than the planner sizes ({MAX_PEAK_ERLANGS:.0e}); give a smaller --daily-requests or "
            f"--service-time"
        )


def plan_capacity(
    regions: list[SimRegion],
    *,
    daily_requests: float,
    peak_to_mean: float,
    service_time_s: float,
    target_blocking: float,
) -> list[RegionPlan]:
    """GPUs per region so that each region alone blocks ≤ target at its own peak (no spill counted)."""
    check_plan_inputs(daily_requests, peak_to_mean, service_time_s, target_blocking)
    total_share = sum(r.share for r in regions)
    plans = []
    for r in regions:
        peak = daily_requests / 86400.0 * r.share / total_share * peak_to_mean
        a = peak * service_time_s
        n = servers_for(a, target_blocking)
        plans.append(RegionPlan(r.name, peak, a, n, erlang_b(n, a)))
    return plans
