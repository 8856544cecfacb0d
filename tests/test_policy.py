"""Pure serving policy: retry (backoff, budget, decisions) and traffic (local first, spill rings)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framefleet.serve.retry import (
    Jitter,
    Outcome,
    RetryBudget,
    RetryPolicy,
    backoff_delay,
    decide,
    schedule_delay,
)
from framefleet.serve.traffic import RegionReport, TrafficConfig, TrafficManager, plan_routes, rings

# --- retry ------------------------------------------------------------------------------------------


def test_full_jitter_stays_under_the_exponential_ceiling() -> None:
    p = RetryPolicy(base_s=0.1, cap_s=1.0, multiplier=2.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [backoff_delay(p, attempt, rng) for _ in range(2000)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        assert sum(delays) / len(delays) == pytest.approx(ceiling / 2, rel=0.1)  # uniform(0, ceiling)


def test_no_jitter_is_deterministic_and_naive_is_immediate() -> None:
    p = RetryPolicy(jitter=Jitter.NONE)
    assert [backoff_delay(p, n, random.Random(n)) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert backoff_delay(RetryPolicy.naive(), 3, random.Random(0)) == 0.0


def test_decide_obeys_cap_signals_and_retry_after() -> None:
    p, rng = RetryPolicy(max_attempts=3), random.Random(0)
    assert not decide(p, None, attempt=1, outcome=Outcome.OK, now=0, rng=rng).retry
    assert not decide(p, None, attempt=1, outcome=Outcome.FATAL, now=0, rng=rng).retry
    d = decide(p, None, attempt=1, outcome=Outcome.DO_NOT_RETRY, now=0, rng=rng)
    assert not d.retry and "do not retry" in d.reason
    assert decide(p, None, attempt=2, outcome=Outcome.BUSY, now=0, rng=rng).retry
    assert "cap" in decide(p, None, attempt=3, outcome=Outcome.BUSY, now=0, rng=rng).reason
    d = decide(p, None, attempt=1, outcome=Outcome.BUSY, now=0, rng=rng, retry_after_s=1.0)
    assert 1.0 <= d.delay <= 1.1  # waits out Retry-After, plus jitter so rejected callers do not return together


def test_budget_limits_retries_to_a_fraction_of_requests() -> None:
    p = RetryPolicy(budget_ratio=0.1, budget_window_s=10, budget_min_retries=0, max_attempts=10)
    budget, rng = RetryBudget.for_policy(p), random.Random(0)
    retries = 0
    for i in range(1000):  # 100 requests/s for 10 s, every attempt rejected
        now = i * 0.01
        budget.record_request(now)
        retries += decide(p, budget, attempt=1, outcome=Outcome.BUSY, now=now, rng=rng).retry
    assert 90 <= retries <= 101  # ≈10% of 1000 requests


def test_budget_window_slides() -> None:
    b = RetryBudget(ratio=0.5, window_s=10, min_retries=0)
    for i in range(10):
        b.record_request(i * 0.1)
    for _ in range(5):
        assert b.can_retry(1.0)
        b.record_retry(1.0)
    assert not b.can_retry(1.0)
    assert b.counts(25.0) == (0.0, 0.0)  # a whole window later everything has expired
    assert not b.can_retry(25.0)  # no requests, no floor: no retries
    assert RetryBudget(ratio=0.0, window_s=10, min_retries=3).can_retry(0.0)  # the floor lets a quiet client retry


def test_schedule_jitter() -> None:
    rng = random.Random(0)
    assert schedule_delay(RetryPolicy(), rng) == 0.0
    delays = [schedule_delay(RetryPolicy(schedule_jitter_s=30), rng) for _ in range(500)]
    assert 0 <= min(delays) < 3 and 27 < max(delays) <= 30


def test_bad_policies_are_rejected() -> None:
    for kwargs in ({"max_attempts": 0}, {"base_s": 2.0, "cap_s": 1.0}, {"budget_window_s": 0}):
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- traffic ----------------------------------------------------------------------------------------

REGIONS = ["us-east", "us-west", "eu-west", "eu-central", "ap-south"]
# Symmetric distances (ms): two near pairs, one far region.
D = {
    "us-east": {"us-east": 0, "us-west": 60, "eu-west": 75, "eu-central": 90, "ap-south": 220},
    "us-west": {"us-east": 60, "us-west": 0, "eu-west": 140, "eu-central": 150, "ap-south": 180},
    "eu-west": {"us-east": 75, "us-west": 140, "eu-west": 0, "eu-central": 20, "ap-south": 120},
    "eu-central": {"us-east": 90, "us-west": 150, "eu-west": 20, "eu-central": 0, "ap-south": 110},
    "ap-south": {"us-east": 220, "us-west": 180, "eu-west": 120, "eu-central": 110, "ap-south": 0},
}


def _reports(slots: list[int], service: float = 0.2) -> list[RegionReport]:
    return [RegionReport(r, n, service) for r, n in zip(REGIONS, slots, strict=True)]


def test_no_spill_with_headroom_and_nearest_first_when_overloaded() -> None:
    reports = _reports([10, 10, 10, 10, 10])  # 50 rps each, target 40 rps at 0.8
    flows, _load, spilling = plan_routes(reports, {"eu-west": 30, "eu-central": 10}, D)
    assert flows["eu-west"] == {"eu-west": 30} and not spilling
    flows, _load, spilling = plan_routes(reports, {"eu-west": 60, "eu-central": 10}, D)
    assert flows["eu-west"] == pytest.approx({"eu-west": 40, "eu-central": 20})  # only the excess, nearest ring
    assert spilling == {"eu-west"}


def test_excess_beyond_the_fleet_stays_home() -> None:
    reports = _reports([10, 10, 10, 10, 10])
    flows, _load, _ = plan_routes(reports, dict.fromkeys(REGIONS, 100.0), D)
    assert all(flows[s] == {s: 100.0} for s in REGIONS)  # everyone is full: nobody to spill to


def test_hysteresis_keeps_a_spilling_region_spilling_near_the_threshold() -> None:
    tm = TrafficManager(D, TrafficConfig(period_s=1.0))
    reports = _reports([10, 10, 10, 10, 10])
    t1 = tm.update(reports, {"eu-west": 45}, now=0.0)
    assert "eu-west" in t1.spilling
    assert tm.update(reports, {"eu-west": 39}, now=0.5) is t1  # locked in until the period ends
    t2 = tm.update(reports, {"eu-west": 39}, now=1.0)  # just under target: still spilling (hysteresis)
    assert "eu-west" in t2.spilling and t2.fractions("eu-west")["eu-west"] < 1.0
    t3 = tm.update(reports, {"eu-west": 30}, now=2.0)  # clearly below: back to local
    assert t3.fractions("eu-west") == {"eu-west": 1.0} and t3.version > t2.version


def test_small_changes_do_not_bump_the_version() -> None:
    tm = TrafficManager(D)
    reports = _reports([10, 10, 10, 10, 10])
    tm.update(reports, {"eu-west": 60}, now=0.0)  # starts spilling: local share drops to target - margin
    t1 = tm.update(reports, {"eu-west": 60}, now=1.0)
    t2 = tm.update(reports, {"eu-west": 60.2}, now=2.0)
    assert t2.version == t1.version and t2.computed_at == 2.0
    t3 = tm.update(reports, {"eu-west": 80}, now=3.0)
    assert t3.version == t1.version + 1


def test_bad_topology_is_named() -> None:
    reports = _reports([1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="unknown regions"):
        plan_routes(reports, {"mars": 1.0}, D)
    broken = {k: dict(v) for k, v in D.items()}
    del broken["ap-south"]["us-east"]
    with pytest.raises(ValueError, match="ap-south → "):
        plan_routes(reports, {}, broken)


demands = st.fixed_dictionaries({r: st.floats(0, 200, allow_nan=False) for r in REGIONS})
slot_lists = st.lists(st.integers(0, 30), min_size=len(REGIONS), max_size=len(REGIONS))


@settings(max_examples=300, deadline=None)
@given(slots=slot_lists, demand=demands)
def test_routing_properties(slots: list[int], demand: dict[str, float]) -> None:
    cfg = TrafficConfig()
    reports = _reports(slots)
    target = {r.region: cfg.target_utilization * r.capacity_rps for r in reports}
    flows, load, _ = plan_routes(reports, demand, D, cfg)
    routes = TrafficManager(D, cfg).update(reports, demand, now=0.0).routes
    tol = 1e-6 * (1 + sum(demand.values()))
    for s in REGIONS:
        # Fractions sum to 1, and every demand is routed somewhere.
        assert sum(f for _, f in routes[s]) == pytest.approx(1.0)
        assert sum(flows[s].values()) == pytest.approx(demand[s], abs=tol)
        # No spill while the source has headroom.
        if demand[s] <= target[s]:
            assert flows[s] == {s: pytest.approx(demand[s], abs=tol)} or demand[s] == 0
    overfull = [t for t in REGIONS if load[t] > target[t] + tol]
    for t in overfull:
        # A region over its target got there only with its own demand, never with someone's spill...
        assert all(flows[s].get(t, 0.0) <= tol for s in REGIONS if s != t)
    if overfull:
        # ...and only because no region anywhere had room left.
        assert all(load[t] >= target[t] - tol for t in REGIONS)
    for s in REGIONS:
        # Nearer rings are filled before farther ones.
        ring_list = rings(s, REGIONS, D, cfg.ring_radii_ms)
        for k, ring in enumerate(ring_list):
            if any(flows[s].get(t, 0.0) > tol for t in ring):
                for nearer in ring_list[:k]:
                    assert all(load[u] >= target[u] - tol for u in nearer)


def test_global_policy_spreads_by_capacity_and_only_to_idle_regions() -> None:
    from framefleet.serve.balance import capacity_shares, pick_region_global

    shares = capacity_shares({"a": 6, "b": 3, "c": 1, "d": 0})
    assert shares == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1, "d": 0.0})
    rng = random.Random(0)
    picks = [pick_region_global(shares, lambda r: True, lambda r: True, rng)[0] for _ in range(5000)]
    assert picks.count("a") / 5000 == pytest.approx(0.6, abs=0.03) and "d" not in picks
    # A full region is skipped; when every idle worker is claimed in transit, go optimistic; none: reject.
    assert pick_region_global(shares, lambda r: r == "c", lambda r: True, rng) == ("c", "global")
    assert pick_region_global(shares, lambda r: False, lambda r: r == "b", rng) == ("b", "optimistic")
    assert pick_region_global(shares, lambda r: False, lambda r: False, rng) == (None, "")
    assert capacity_shares({"a": 0}) == {}
