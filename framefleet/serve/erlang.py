"""Erlang-B, the blocking of a no-queue pool (pure: math only). The traffic manager judges a region's
headroom by it and the capacity planner (sim/capacity.py, which re-exports these) sizes regions with it.

A region of N one-request workers that never queues is an M/G/N/N loss system: with offered load A = λ·E[S]
erlangs, the share of arrivals that find every worker busy is Erlang-B, whatever the service-time law:

    B(0) = 1;  B(k) = A·B(k−1) / (k + A·B(k−1))

Why the traffic manager needs it rather than utilization: small pools block early. Offered half its capacity, a
pool of 2 workers already turns away 20% of its requests, one of 100 almost none.
"""

from __future__ import annotations

import functools
import math

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


def carried_erlangs(servers: int, erlangs: float) -> float:
    """The load a pool actually serves, A·(1 − B): its busy workers on average."""
    return erlangs * (1.0 - erlang_b(servers, erlangs)) if erlangs > 0 else 0.0


@functools.lru_cache(maxsize=4096)
def erlangs_at(servers: int, target_blocking: float) -> float:
    """The most offered load (erlangs) a pool of `servers` takes while blocking at most `target_blocking`.

    B rises with A, so bisection; 60 halvings of [0, N/(1 − target)] (where B ≥ target for sure: the pool carries
    at most N) pin it far below a request's worth. Cached: the traffic manager asks every period, and a pool's
    size rarely changes."""
    if not 0 < target_blocking < 1:
        raise ValueError(f"target blocking must be in (0, 1), got {target_blocking}")
    if servers <= 0:
        return 0.0
    lo, hi = 0.0, servers / (1 - target_blocking)
    for _ in range(60):
        mid = (lo + hi) / 2
        if erlang_b(servers, mid) <= target_blocking:
            lo = mid
        else:
            hi = mid
    return lo


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
