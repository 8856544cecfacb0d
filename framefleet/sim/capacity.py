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

# Above this many erlangs, Erlang-B comes from the normal (square-root staffing) approximation instead of the
# recursion: the recursion's ~10·√A steps would approach a second, while the approximation's error (the Poisson
# law's skew, O(β³/√A)) costs a few GPUs at most in a hundred million there.
EXACT_MAX_ERLANGS = 1e8
_SQRT_2PI = math.sqrt(2 * math.pi)


def _check(servers: float, erlangs: float) -> None:
    if not (math.isfinite(erlangs) and math.isfinite(servers)):
        raise ValueError(f"servers and erlangs must be finite, got servers={servers}, erlangs={erlangs}")
    if servers < 0 or erlangs < 0:
        raise ValueError("servers and erlangs must be ≥ 0")


def _inverse_mills(beta: float) -> float:
    """φ(β)/Φ(β), the standard normal density over its distribution function; decreasing in β, ≈ -β far left."""
    if beta > -30:
        return math.exp(-beta * beta / 2) / _SQRT_2PI / (0.5 * math.erfc(-beta / math.sqrt(2)))
    r = 1 / (beta * beta)  # Φ(β) = φ(β)/|β|·(1 - r + 3r² - 15r³ + …): relative error < 2e-10 here
    return -beta / (1 - r + 3 * r * r - 15 * r**3)


def _erlang_b_normal(servers: float, erlangs: float) -> float:
    """Erlang-B from the normal approximation of the Poisson(A) law: B = P(X = N)/P(X ≤ N) ≈ φ(β)/(√A·Φ(β)) with
    β = (N − A)/√A. It holds in every regime: far below A it tends to 1 − N/A, the exact limit."""
    root = math.sqrt(erlangs)
    return min(1.0, _inverse_mills((servers - erlangs) / root) / root)


def erlang_b(servers: int, erlangs: float) -> float:
    """Blocking probability of an M/G/c/c pool with `servers` slots and `erlangs` offered load.

    Exact (the recursion) up to EXACT_MAX_ERLANGS, the normal approximation above it; never more than ~10·√A
    steps, so no time proportional to the load."""
    _check(servers, erlangs)
    if erlangs > EXACT_MAX_ERLANGS:
        return _erlang_b_normal(servers, erlangs)
    # The recursion forgets where it starts: an error in 1/B(k0) is multiplied by Π k/A over the steps after
    # k0, which is below e^-50 once k0 is 10·√A + 10 under min(N, A). So big pools (the fluid mode's 10 000
    # GPUs a region) start there with B = 1 instead of at 0: ~√A steps, not N.
    k0 = max(0, min(servers, int(erlangs)) - int(10 * math.sqrt(erlangs)) - 10)
    b = 1.0
    for k in range(k0 + 1, servers + 1):
        b = erlangs * b / (k + erlangs * b)
        if b == 0.0:  # far above the load B underflows and stays 0: no need to walk to N
            break
    return b


def servers_for(erlangs: float, target_blocking: float) -> int:
    """The fewest slots whose Erlang-B blocking is ≤ target, in time independent of the load's size.

    Up to EXACT_MAX_ERLANGS: one pass of the recursion, exact. It starts 10·√A + 10 below the lower bound
    N ≥ A·(1 − target) (a pool carries at most N erlangs) with B = 1, which the recursion forgets as in
    `erlang_b`, and stops at the first N that meets the target: ~10·√A + O(√A) steps whatever the regime
    (N ≈ A + z·√A for small targets, N ≈ A·(1 − target) for large loads at a fixed target).
    Above it: bisection on β = (N − A)/√A of the normal approximation φ(β)/(√A·Φ(β)) ≤ target (a few hundred
    steps at most), N = ⌈A + β·√A⌉; off by a few GPUs at most in a hundred million (square-root staffing).
    Raises ValueError for a non-finite load or a target outside (0, 1).
    """
    if not (math.isfinite(erlangs) and math.isfinite(target_blocking)):
        raise ValueError(f"erlangs and target blocking must be finite, got {erlangs} and {target_blocking}")
    if not 0 < target_blocking < 1:
        raise ValueError(f"target blocking must be in (0, 1), got {target_blocking}")
    if erlangs <= 0:
        return 0
    if erlangs > EXACT_MAX_ERLANGS:
        return _servers_normal(erlangs, target_blocking)
    lower = math.floor(erlangs * (1 - target_blocking))
    k = max(0, lower - int(10 * math.sqrt(erlangs)) - 10)
    b = 1.0
    while True:
        k += 1
        b = erlangs * b / (k + erlangs * b)
        if k >= lower and b <= target_blocking:
            return k


def _servers_normal(erlangs: float, target_blocking: float) -> int:
    root = math.sqrt(erlangs)
    goal = target_blocking * root  # φ(β)/Φ(β) ≤ goal
    lo, hi = -goal - 1.0, 40.0  # φ/Φ > -β ≥ goal + 1 at lo; φ(40) = 0 in floating point at hi
    for _ in range(2000):
        mid = (lo + hi) / 2
        if not lo < mid < hi or (hi - lo) * root < 0.01:
            break
        if _inverse_mills(mid) <= goal:
            hi = mid
        else:
            lo = mid
    return max(0, math.ceil(erlangs + hi * root))


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
