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
from framefleet.sim.scenario import SimRegion


def erlang_b(servers: int, erlangs: float) -> float:
    """Blocking probability of an M/G/c/c pool with `servers` slots and `erlangs` offered load."""
    if servers < 0 or erlangs < 0:
        raise ValueError("servers and erlangs must be ≥ 0")
    # The recursion forgets where it starts: an error in 1/B(k0) is multiplied by Π k/A over the steps after
    # k0, which is below e^-50 once k0 is 10·√A + 10 under min(N, A). So big pools (the fluid mode's 10 000
    # GPUs a region) start there with B = 1 instead of at 0: ~√A steps, not N.
    k0 = max(0, min(servers, int(erlangs)) - int(10 * math.sqrt(erlangs)) - 10)
    b = 1.0
    for k in range(k0 + 1, servers + 1):
        b = erlangs * b / (k + erlangs * b)
    return b


def servers_for(erlangs: float, target_blocking: float) -> int:
    """The fewest slots whose Erlang-B blocking is ≤ target (one pass of the recursion)."""
    if not 0 < target_blocking < 1:
        raise ValueError(f"target blocking must be in (0, 1), got {target_blocking}")
    if erlangs <= 0:
        return 0
    b, k = 1.0, 0
    while b > target_blocking:
        k += 1
        b = erlangs * b / (k + erlangs * b)
    return k


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


def plan_capacity(
    regions: list[SimRegion],
    *,
    daily_requests: float,
    peak_to_mean: float,
    service_time_s: float,
    target_blocking: float,
) -> list[RegionPlan]:
    """GPUs per region so that each region alone blocks ≤ target at its own peak (no spill counted)."""
    if not daily_requests > 0 or math.isinf(daily_requests):
        raise InputError(f"--daily-requests must be a positive number, got {daily_requests}")
    if not 1 <= peak_to_mean <= 2:
        raise InputError(f"--peak-to-mean must be in [1, 2] (a cosine day), got {peak_to_mean}")
    if not service_time_s > 0:
        raise InputError(f"--service-time must be > 0 seconds, got {service_time_s}")
    if not 0 < target_blocking < 1:
        raise InputError(f"--target-blocking must be in (0, 1), e.g. 0.01, got {target_blocking}")
    total_share = sum(r.share for r in regions)
    plans = []
    for r in regions:
        peak = daily_requests / 86400.0 * r.share / total_share * peak_to_mean
        a = peak * service_time_s
        n = servers_for(a, target_blocking)
        plans.append(RegionPlan(r.name, peak, a, n, erlang_b(n, a)))
    return plans
