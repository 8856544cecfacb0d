"""The spill policy (issue 18): a request whose region is full *now* goes to the nearest ring with an idle worker
within a round-trip budget, a busy answer gets its second try in another region, and the traffic manager judges
headroom by Erlang-B blocking. Pure policy first, then properties, then the gateway and the simulator."""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import replace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framefleet.serve.balance import MAX_REGIONS, POLICIES, RoutingState, pick_region, pick_region_spill
from framefleet.serve.config import parse_fleet
from framefleet.serve.erlang import carried_erlangs, erlang_b, erlangs_at
from framefleet.serve.gateway import Gateway
from framefleet.serve.gateway_app import create_gateway_app
from framefleet.serve.traffic import RegionReport, TrafficConfig, TrafficManager, plan_routes, target_load_rps
from framefleet.sim import parse_scenario, simulate
from framefleet.sim.engine import EventSimulation

NAMES = ["a", "b", "c", "d"]
# a–b near (40 ms), c a ring out (120 ms), d far (300 ms): beyond the default 200 ms budget
RTT = {
    "a": {"a": 0, "b": 40, "c": 120, "d": 300},
    "b": {"a": 40, "b": 0, "c": 100, "d": 280},
    "c": {"a": 120, "b": 100, "c": 0, "d": 250},
    "d": {"a": 300, "b": 280, "c": 250, "d": 0},
}
RADII = (50.0, 150.0, math.inf)


def state(policy: str = "spill", budget: float = 200.0, **slots: tuple[int, int, int]) -> RoutingState:
    """A routing state with (healthy, busy, incoming) per region; unnamed regions: 4 idle workers."""
    rs = RoutingState(NAMES, RTT, TrafficConfig(ring_radii_ms=RADII, spill_budget_ms=budget), policy)
    for r in NAMES:
        rs.healthy[r], rs.busy[r], rs.incoming[r] = slots.get(r, (4, 0, 0))
    return rs


# --- Erlang-B headroom --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("servers", [1, 2, 3, 9, 40, 500])
@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_erlangs_at_inverts_erlang_b(servers: int, target: float) -> None:
    a = erlangs_at(servers, target)
    assert erlang_b(servers, a) == pytest.approx(target, rel=1e-6)
    assert erlang_b(servers, a * 1.01) > target
    assert carried_erlangs(servers, a) == pytest.approx(a * (1 - target), rel=1e-6)
    assert erlangs_at(0, target) == 0.0


def test_blocking_headroom_is_tighter_for_small_pools_and_looser_for_big_ones() -> None:
    cfg = TrafficConfig(target_utilization=0.6, target_blocking=0.05)
    small, big = RegionReport("s", 2, 0.2), RegionReport("b", 200, 0.2)
    # 2 workers at 60% utilization block ~24% of requests: blocking allows far less than the utilization target...
    assert target_load_rps(small, cfg, "blocking") < 0.5 * target_load_rps(small, cfg, "utilization")
    # ...and a big pool runs hotter than 60% at 5% blocking.
    assert target_load_rps(big, cfg, "blocking") > target_load_rps(big, cfg, "utilization")
    with pytest.raises(ValueError, match="headroom_by"):
        plan_routes([small], {}, {"s": {"s": 0}}, cfg, headroom_by="vibes")


def test_the_table_spills_a_small_pool_that_blocks_though_its_utilization_is_low() -> None:
    cfg = TrafficConfig(target_utilization=0.8, target_blocking=0.05, ring_radii_ms=RADII)
    reports = [
        RegionReport("a", 2, 0.2),
        RegionReport("b", 40, 0.2),
        RegionReport("c", 4, 0.2),
        RegionReport("d", 4, 0.2),
    ]
    demand = {"a": 5.0, "b": 10.0}  # a: 1 erlang on 2 workers, 50% utilization, B = 20%
    flows, _, spilling = plan_routes(reports, demand, RTT, cfg)
    assert flows["a"] == {"a": 5.0} and not spilling  # by utilization: fine
    flows, _load, spilling = plan_routes(reports, demand, RTT, cfg, headroom_by="blocking")
    assert spilling == {"a"} and flows["a"]["b"] > 0 and set(flows["a"]) == {"a", "b"}  # nearest ring first
    assert erlang_b(2, flows["a"]["a"] * 0.2) == pytest.approx(0.05, rel=1e-3)  # a keeps what it blocks 5% of


def test_blocking_headroom_keeps_hysteresis_and_lock_in() -> None:
    cfg = TrafficConfig(target_blocking=0.05, hysteresis=0.05, ring_radii_ms=RADII, period_s=1.0)
    tm = TrafficManager(RTT, cfg, headroom_by="blocking")
    reports = [RegionReport(r, 10, 0.2) for r in NAMES]  # 50 rps capacity each
    target = target_load_rps(reports[0], cfg, "blocking")
    t1 = tm.update(reports, {"a": target + 5}, now=0.0)
    assert "a" in t1.spilling
    assert tm.update(reports, {"a": target - 1}, now=0.5) is t1  # locked in until the period ends
    t2 = tm.update(reports, {"a": target - 1}, now=1.0)  # just under the target: still spilling
    assert "a" in t2.spilling and t2.fractions("a")["a"] < 1.0
    t3 = tm.update(reports, {"a": target - 5}, now=2.0)  # more than hysteresis × capacity below: home again
    assert t3.fractions("a") == {"a": 1.0}


# --- the per-request rules ------------------------------------------------------------------------------------------
def test_spill_goes_to_an_idle_ring_even_when_no_region_has_planned_headroom() -> None:
    def full_home(r: str) -> bool:
        return r != "a"

    rng = random.Random(0)
    args = ("a", {"a": 1.0}, NAMES, RTT, RADII, full_home, full_home, rng)
    # the traffic policy under general overload (no headroom anywhere): rejects, though b has an idle worker now
    assert pick_region(*args, has_headroom=lambda _r: False) == (None, "")
    assert pick_region_spill(*args, budget_ms=200.0) == ("b", "ring")  # the nearest ring first
    only_far = ("a", {"a": 1.0}, NAMES, RTT, RADII, lambda r: r == "d", lambda r: r == "d", rng)
    assert pick_region_spill(*only_far, budget_ms=200.0) == (None, "")  # d is 300 ms away: over the budget
    assert pick_region_spill(*only_far, budget_ms=300.0) == ("d", "ring")


def test_spill_prefers_the_tables_targets_within_the_budget_then_takes_a_claimed_home_worker() -> None:
    rng = random.Random(0)
    idle = lambda r: r in ("b", "c")  # noqa: E731
    picks = {pick_region_spill("a", {"a": 0.5, "c": 0.5}, NAMES, RTT, RADII, idle, idle, rng, 200.0) for _ in range(50)}
    assert picks == {("c", "table")}  # the table's target beats the nearer ring
    # home's only idle worker is claimed by a request in transit: take it (it is there now), before any spill
    assert pick_region_spill("a", {"a": 1.0}, NAMES, RTT, RADII, lambda r: r == "b", lambda r: True, rng, 200.0) == (
        "a",
        "optimistic",
    )


def test_second_try_goes_home_first_then_the_nearest_idle_ring_never_twice_and_never_past_the_cap() -> None:
    rng = random.Random(0)
    rs = state(b=(4, 4, 0))
    assert rs.second_try("a", ["b"], rng) == "a"  # home has an idle worker now
    rs = state(a=(4, 4, 0), b=(4, 4, 0))
    assert rs.second_try("a", ["b"], rng) == "c"
    assert rs.second_try("a", ["c"], rng) is None  # a and b full, c tried, d over the budget
    assert rs.second_try("a", ["b", "c"], rng) is None  # MAX_REGIONS reached
    assert MAX_REGIONS == 2
    assert state("traffic").second_try("a", ["a"], rng) is None  # the other policies keep their in-region try
    assert rs.second_try("a", ["b"], rng, allowed=["a", "b", "d"]) is None  # c does not host the task


def test_spill_is_a_policy_and_the_old_one_stays_reachable() -> None:
    assert "spill" in POLICIES and "traffic" in POLICIES
    assert state("spill").manager.headroom_by == "blocking"
    assert state("traffic").manager.headroom_by == "utilization"
    assert state("spill").uses_table and state("traffic").uses_table and not state("global").uses_table


# --- properties ---------------------------------------------------------------------------------------------------
pool = st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 3))


@settings(max_examples=300, deadline=None)
@given(
    pools=st.fixed_dictionaries({r: pool for r in NAMES}),
    source=st.sampled_from(NAMES),
    budget=st.sampled_from([0.0, 40.0, 100.0, 130.0, 200.0, 1000.0]),
    churn=st.lists(st.tuples(st.sampled_from(NAMES), st.integers(-2, 2)), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_a_request_visits_at_most_the_cap_and_never_spills_past_the_budget(
    pools: dict[str, tuple[int, int, int]],
    source: str,
    budget: float,
    churn: list[tuple[str, int]],
    seed: int,
) -> None:
    rs = state(budget=budget, **{r: (h, min(b, h), i) for r, (h, b, i) in pools.items()})
    rng = random.Random(seed)
    target, _ = rs.pick(source, rng)
    visited: list[str] = []
    while target is not None:
        visited.append(target)
        if churn:  # the fleet moves while the request travels: its region fills up, others free a worker
            region, delta = churn.pop()
            rs.busy[region] = max(0, min(rs.healthy[region], rs.busy[region] + delta))
        target = rs.second_try(source, visited, rng)
    assert len(visited) <= MAX_REGIONS
    assert len(set(visited)) == len(visited)
    assert all(RTT[source][r] <= budget for r in visited)


@settings(max_examples=200, deadline=None)
@given(
    healthy=st.fixed_dictionaries({r: st.integers(1, 6) for r in NAMES}),
    source=st.sampled_from(NAMES),
    seed=st.integers(0, 2**16),
    demand=st.fixed_dictionaries({r: st.floats(0, 100) for r in NAMES}),
)
def test_with_every_pool_idle_nothing_leaves_its_region(
    healthy: dict[str, int], source: str, seed: int, demand: dict[str, float]
) -> None:
    rs = state(**{r: (n, 0, 0) for r, n in healthy.items()})
    for r, rps in demand.items():  # whatever the table plans (it may spill on measured demand)...
        rs.demand.record(r, 0.0, rps * rs.demand.window_s)
    rs.update(0.0)
    # ...an idle pool at home takes the request, and nothing crosses regions
    assert rs.pick(source, random.Random(seed)) == (source, "local")


# --- the gateway ----------------------------------------------------------------------------------------------------
FLEET = parse_fleet(
    {
        "regions": [{"name": "north", "workers": 1}, {"name": "south", "workers": 1}, {"name": "far", "workers": 1}],
        "rtt_ms": {"north": {"south": 0, "far": 0}, "south": {"far": 0}},
        "traffic": {"spill_budget_ms": 100},
        "api_keys": {"key-a": "tenant-a"},
    }
)
# "far" is over the budget by its RTT in the routing state only (transit in the test stays 0 ms)
FLEET = replace(FLEET, rtt_ms={**FLEET.rtt_ms, "north": {**FLEET.rtt_ms["north"], "far": 150.0}})
BUSY = {"error": {"type": "Busy", "reason": "busy", "message": "busy"}}


def _gateway_call(policy: str, answer: dict[str, int]) -> tuple[httpx.Response, Gateway, list[str]]:
    urls = {"north": ["http://n0"], "south": ["http://s0"], "far": ["http://f0"]}
    app = create_gateway_app(FLEET, urls, policy=policy, seed=1)
    gw: Gateway = app.state.gateway
    seen: list[str] = []

    def worker(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if answer.get(request.url.host, 200) == 503:
            return httpx.Response(503, json=BUSY)
        return httpx.Response(200, json={"result": {"echo": json.loads(request.content)}, "service_ms": 5})

    gw.http = httpx.AsyncClient(transport=httpx.MockTransport(worker))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            return await c.post("/v1/synthetic", headers={"Authorization": "Bearer key-a", "X-Region": "north"},
                                json={})  # fmt: skip

    return asyncio.run(go()), gw, seen


def test_gateway_spills_a_busy_answer_to_another_region_and_counts_it() -> None:
    r, gw, seen = _gateway_call("spill", {"n0": 503})
    assert r.status_code == 200 and r.json()["region"] == "south"
    assert seen == ["n0", "s0"]
    metrics = gw.metrics.registry.get_sample_value
    assert metrics("framefleet_gateway_spills_total", {"source": "north", "target": "south", "rule": "second_try"}) == 1


def test_gateway_spill_never_passes_the_budget_nor_the_cap() -> None:
    r, _, seen = _gateway_call("spill", {"n0": 503, "s0": 503})
    assert r.status_code == 503 and r.json()["error"]["reason"] == "busy"
    assert seen == ["n0", "s0"]  # two regions at most; "far" (150 ms) is over the 100 ms budget anyway
    _, _, seen = _gateway_call("traffic", {"n0": 503})
    assert seen == ["n0"]  # the traffic policy's second try stays in the region (north has one worker)


# --- the simulator --------------------------------------------------------------------------------------------------
def _scenario(erlangs: float, policy: str = "spill") -> dict[str, object]:
    return {
        "simulation": {"duration_s": 600, "seed": 3, "bucket_s": 60},
        "regions": [{"name": "a", "gpus": 4}, {"name": "b", "gpus": 2}, {"name": "far", "gpus": 4}],
        "rtt_ms": {"a": {"b": 100, "far": 400}, "b": {"far": 400}},
        "demand": {"daily_requests": erlangs * 86400},
        "service": {"mean_s": 1.0, "spread_s": 0.0, "kind": "exponential"},
        "routing": {"policy": policy, "spill_budget_ms": 200},
        "client": {"max_attempts": 1},
    }


def test_the_simulator_spills_with_the_gateways_rules_within_the_budget() -> None:
    sim = EventSimulation(parse_scenario(_scenario(9.0), "overloaded"))
    assert type(sim.routing) is RoutingState and sim.routing.manager.headroom_by == "blocking"
    report = sim.run().to_dict()
    flows = sim.series.flows.sum(axis=0)  # [source, target]
    a, b, far = 0, 1, 2
    assert flows[a, b] > 0 and flows[b, a] > 0  # a and b pool their workers...
    assert flows[a, far] == flows[b, far] == flows[far, a] == flows[far, b] == 0  # ...far is over the budget
    assert sim.second_tries > 0  # busy on arrival: the second try in another region, as in the gateway
    assert report["failed"] + report["succeeded"] == report["requests"]
    assert sim.routing.busy == dict.fromkeys(sim.names, 0) and sim.routing.incoming == dict.fromkeys(sim.names, 0)


def test_under_general_overload_spill_pools_the_regions_and_the_traffic_policy_does_not() -> None:
    def two(policy: str) -> dict[str, object]:
        sc = _scenario(7.5, policy)  # 1.25x the 6 GPUs of a and b
        sc["regions"] = sc["regions"][:2]  # type: ignore[index]
        sc["rtt_ms"] = {"a": {"b": 100}}
        sc["simulation"] = {"duration_s": 3000, "seed": 3, "bucket_s": 60}
        return simulate(parse_scenario(sc, policy)).to_dict()

    spill, traffic = two("spill"), two("traffic")
    # (the traffic policy spills a little too, whenever its noisy demand estimate shows one region headroom)
    assert spill["success_rate"] > traffic["success_rate"] + 0.01
    assert spill["cross_region_share"] > traffic["cross_region_share"]


def test_the_simulator_keeps_an_idle_fleet_home_and_fluid_mode_runs_the_policy() -> None:
    assert simulate(parse_scenario(_scenario(0.05), "idle")).to_dict()["cross_region_share"] == 0.0
    fluid = simulate(parse_scenario(_scenario(9.0), "overloaded"), mode="fluid").to_dict()
    assert 0 < fluid["cross_region_share"] < 1 and fluid["policy"] == "spill"
