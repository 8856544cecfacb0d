"""The simulator: Erlang-B agreement, the shipped scenarios' story, event vs fluid agreement, bad scenarios."""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from framefleet.errors import InputError
from framefleet.serve.balance import RoutingState
from framefleet.sim import erlang_b, load_scenario, parse_scenario, plan_capacity, servers_for, simulate
from framefleet.sim.engine import EventSimulation
from framefleet.sim.scenario import SimRegion

from conftest import one_json, run_cli

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def one_region(gpus: int, erlangs: float, *, duration_s: float = 20000, seed: int = 1) -> dict[str, Any]:
    return {
        "simulation": {"duration_s": duration_s, "seed": seed, "bucket_s": 600},
        "regions": [{"name": "solo", "gpus": gpus}],
        "demand": {"daily_requests": erlangs * 86400},  # service mean 1 s: rate = erlangs
        "service": {"mean_s": 1.0, "spread_s": 0.0, "kind": "exponential"},
        "client": {"max_attempts": 1},
    }


def test_erlang_b_recursion_against_known_values() -> None:
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_b(10, 5.0) == pytest.approx(0.018384, abs=1e-6)  # standard Erlang-B tables
    # ANCHORS: at B ≤ 1%, bigger pools run hotter.
    for n, util in ((8, 0.39), (32, 0.68), (128, 0.86)):
        a = max(a10 / 100 for a10 in range(1, 100 * n) if erlang_b(n, a10 / 100) <= 0.01)
        assert a * (1 - erlang_b(n, a)) / n == pytest.approx(util, abs=0.015)
    assert servers_for(10.0, 0.01) == 18 and erlang_b(18, 10.0) <= 0.01 < erlang_b(17, 10.0)


def test_erlang_b_fast_start_equals_the_full_recursion() -> None:
    def full(n: int, a: float) -> float:
        b = 1.0
        for k in range(1, n + 1):
            b = a * b / (k + a * b)
        return b

    rng = random.Random(0)
    for _ in range(500):
        a = 10 ** rng.uniform(-1, 4)
        n = int(a * rng.uniform(0.3, 1.6))
        assert erlang_b(n, a) == pytest.approx(full(n, a), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("gpus", "erlangs"), [(20, 12.0), (20, 18.0), (20, 24.0), (5, 4.0)])
def test_simulated_blocking_matches_erlang_b(gpus: int, erlangs: float) -> None:
    report = simulate(parse_scenario(one_region(gpus, erlangs), "erlang")).to_dict()
    blocking = 1 - report["success_rate"]
    assert abs(blocking - erlang_b(gpus, erlangs)) < 0.01, (blocking, erlang_b(gpus, erlangs))
    assert report["attempts_per_request"] == 1.0


def test_fluid_mode_matches_erlang_b_exactly_for_one_region() -> None:
    report = simulate(parse_scenario(one_region(20, 18.0, duration_s=3600), "erlang"), mode="fluid").to_dict()
    assert 1 - report["success_rate"] == pytest.approx(erlang_b(20, 18.0), abs=1e-4)


def test_the_storm_and_its_cure_in_one_run() -> None:
    runs = {n: simulate(load_scenario(SCENARIOS / f"{n}.toml")).to_dict() for n in ("storm", "storm-cured")}
    storm, cured = runs["storm"], runs["storm-cured"]
    assert storm["success_rate"] < 0.95 and storm["attempts_per_request"] > 1.1  # a dip and amplification
    assert cured["success_rate"] >= 0.995 and cured["attempts_per_request"] < 1.03
    assert storm["cross_region_share"] == cured["cross_region_share"] == 0.0  # pinned in both


def test_global_routing_works_but_crosses_regions() -> None:
    report = simulate(load_scenario(SCENARIOS / "global-quick-retries.toml")).to_dict()
    assert report["success_rate"] >= 0.99
    assert report["cross_region_share"] > 0.7  # five regions in six are someone else's


@pytest.mark.parametrize(("name", "region"), [("surge", "ap-south"), ("outage", "eu-west")])
def test_surge_and_outage_absorbed_by_neighbours(name: str, region: str) -> None:
    sc = replace(load_scenario(SCENARIOS / f"{name}.toml"), duration_s=4800)
    traffic = simulate(sc).to_dict()
    local = simulate(replace(sc, policy="local-only")).to_dict()
    assert traffic["success_rate"] >= 0.995, traffic["success_rate"]
    assert traffic["per_region"][region]["success_rate"] >= 0.99
    assert local["per_region"][region]["success_rate"] < 0.9  # without spill the region's users lose
    assert traffic["cross_region_share"] > 0.02


def test_outage_kills_running_requests_and_leaves_no_slot_taken() -> None:
    sc = replace(load_scenario(SCENARIOS / "outage.toml"), duration_s=2400, gpu_mtbf_h=2.0, repair_s=60.0)
    sim = EventSimulation(sc)
    report = sim.run().to_dict()
    assert report["failed"] + report["succeeded"] == report["requests"]  # every request ended
    assert sim.busy == [0] * len(sim.names) and all(not slots for slots in sim.inflight)
    assert sim.incoming == [0] * len(sim.names)


@pytest.mark.parametrize("policy", ["traffic", "global", "local-only"])
def test_the_engine_routes_with_the_gateways_routing_state_and_counts_busy_on_arrival(policy: str) -> None:
    overloaded = {
        "simulation": {"duration_s": 600, "seed": 3, "bucket_s": 60},
        "regions": [{"name": "a", "gpus": 4}, {"name": "b", "gpus": 4}],
        "rtt_ms": {"a": {"b": 100}},
        "demand": {"daily_requests": 12 * 86400},  # 12 erlangs on 8 GPUs
        "service": {"mean_s": 1.0, "spread_s": 0.0, "kind": "exponential"},
        "routing": {"policy": policy},
        "client": {"max_attempts": 1},
    }
    sim = EventSimulation(parse_scenario(overloaded, "overloaded"))
    assert type(sim.routing) is RoutingState  # the very class the gateway holds
    report = sim.run().to_dict()
    assert report["failure_reasons"] and isinstance(report["busy_on_arrival"], int)
    if policy == "local-only":  # nothing crosses regions: no belief goes stale in transit
        assert report["busy_on_arrival"] == 0
    else:  # spilled requests that find the far region full by the time they reach it
        assert 0 < report["busy_on_arrival"] <= report["failed"]
    assert sim.routing.busy == {"a": 0, "b": 0} and sim.routing.incoming == {"a": 0, "b": 0}
    assert simulate(parse_scenario(overloaded, "overloaded"), mode="fluid").to_dict()["busy_on_arrival"] is None


def test_same_seed_same_numbers() -> None:
    sc = replace(load_scenario(SCENARIOS / "storm.toml"), duration_s=600)
    a, b = simulate(sc).to_dict(), simulate(sc).to_dict()
    for key in ("requests", "succeeded", "attempts_per_request", "latency_ms"):
        assert a[key] == b[key]
    assert simulate(replace(sc, seed=sc.seed + 1)).to_dict()["requests"] != a["requests"]


def test_event_and_fluid_agree_at_a_scale_both_can_run() -> None:
    # The planet at its busiest hour with 1.7x the demand it was planned for: regions spill and block.
    sc = replace(load_scenario(SCENARIOS / "planet-day.toml"), duration_s=3600, start_utc_h=22)
    sc = replace(sc, demand=replace(sc.demand, daily_requests=2e7))
    ev, fl = simulate(sc).to_dict(), simulate(sc, mode="fluid").to_dict()
    assert ev["success_rate"] < 0.9995 and ev["cross_region_share"] > 0.1  # not a trivially idle planet
    assert abs(ev["requests"] - fl["requests"]) / fl["requests"] < 0.01
    assert abs(ev["success_rate"] - fl["success_rate"]) < 0.005
    assert abs(ev["attempts_per_request"] - fl["attempts_per_request"]) < 0.02
    assert abs(ev["utilization"] - fl["utilization"]) < 0.015
    assert abs(ev["cross_region_share"] - fl["cross_region_share"]) < 0.03


def test_capacity_plan_meets_its_target_in_simulation() -> None:
    regions = [SimRegion("a", 0, 0.0, 2.0), SimRegion("b", 0, 8.0, 1.0)]
    plans = plan_capacity(regions, daily_requests=2e6, peak_to_mean=1.5, service_time_s=4.0, target_blocking=0.01)
    assert [p.region for p in plans] == ["a", "b"]
    for p in plans:
        assert p.blocking <= 0.01 < erlang_b(p.gpus - 1, p.erlangs)
    with pytest.raises(InputError, match="peak-to-mean"):
        plan_capacity(regions, daily_requests=1e6, peak_to_mean=3, service_time_s=4, target_blocking=0.01)


def test_capacity_cli_side_by_side(tmp_path: Path) -> None:
    regions = tmp_path / "regions.toml"
    regions.write_text(
        '[[regions]]\nname = "x"\nshare = 2\n\n[[regions]]\nname = "y"\nutc_offset_h = 9\n\n[rtt_ms]\nx = { y = 100 }\n'
    )
    proc = run_cli(
        "capacity", "--daily-requests", "1e6", "--peak-to-mean", "2", "--service-time", "4",
        "--target-blocking", "0.01", "--regions", str(regions), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = one_json(proc.stdout)
    assert out["check_mode"] == "event" and out["gpus"] == sum(r["gpus"] for r in out["regions"].values())
    for r in out["regions"].values():
        assert r["planned_success"] >= 0.99
        assert r["simulated_peak_hour_success"] >= 0.985  # the worst simulated hour, near the plan
        assert r["simulated_success"] >= r["simulated_peak_hour_success"]


def test_simulate_cli_json_and_plot(tmp_path: Path) -> None:
    short = tmp_path / "short.toml"
    short.write_text((SCENARIOS / "surge.toml").read_text().replace("duration_s = 7200", "duration_s = 900"))
    png = tmp_path / "out.png"
    proc = run_cli("simulate", str(short), str(short), "--policy", "local-only", "--plot", str(png), "--json")
    assert proc.returncode == 0, proc.stderr
    runs = one_json(proc.stdout)["runs"]
    assert len(runs) == 2 and runs[0]["policy"] == "local-only" and runs[0]["requests"] == runs[1]["requests"]
    for key in ("success_rate", "latency_ms", "attempts_per_request", "cross_region_share", "per_region"):
        assert key in runs[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


BAD = [
    ("[simulation]\nduration_s = 60\nspeed = 3\n", "simulation: unknown key 'speed'"),
    ("[demand]\ndaily_requests = -5\n", "demand.daily_requests: must be ≥ 0"),
    ("[[events]]\nkind = 'surge'\nregion = 'b'\nfactor = -2\n", "events[0].factor: must be ≥ 0"),
    ("[rtt_ms]\na = { }\n", "no round-trip time between 'a' and 'b'"),
    ("[rtt_ms]\na = { c = 5 }\n", "rtt_ms.a.c: unknown region"),
    ("[client]\nmax_attempts = 0\n", "client: max_attempts must be ≥ 1"),
    ("[routing]\npolicy = 'nearest'\n", "routing.policy"),
]


@pytest.mark.parametrize(("patch", "message"), BAD)
def test_bad_scenarios_exit_2_naming_the_field(tmp_path: Path, patch: str, message: str) -> None:
    base = {
        "regions": '[[regions]]\nname = "a"\ngpus = 2\n\n[[regions]]\nname = "b"\ngpus = 2\n',
        "rtt": "[rtt_ms]\na = { b = 10 }\n",
        "demand": "[demand]\ndaily_requests = 1000\n",
    }
    if patch.startswith("[rtt_ms]"):
        base["rtt"] = patch
    elif patch.startswith("[demand]"):
        base["demand"] = patch
    text = "".join(base.values()) + ("" if patch.startswith(("[rtt_ms]", "[demand]")) else patch)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = run_cli("simulate", str(path), "--json")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = one_json(proc.stdout)["error"]
    assert err["type"] == "InputError" and message in err["message"], err["message"]


def test_missing_scenario_file_and_bad_flags() -> None:
    proc = run_cli("simulate", "nope.toml", "--json")
    assert proc.returncode == 2 and "no such scenario file" in json.loads(proc.stdout)["error"]["message"]
    proc = run_cli("simulate", str(SCENARIOS / "storm.toml"), "--mode", "quantum", "--json")
    assert proc.returncode == 2 and "--mode" in json.loads(proc.stdout)["error"]["message"]


def test_every_shipped_scenario_parses() -> None:
    names = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    for required in ("global-quick-retries", "storm", "storm-cured", "surge", "outage", "planet-day", "planet-1b"):
        assert required in names
    for p in SCENARIOS.glob("*.toml"):
        sc = load_scenario(p)
        assert len(sc.regions) >= 1 and sc.duration_s > 0
    planet = load_scenario(SCENARIOS / "planet-day.toml")
    assert len(planet.regions) >= 10 and planet.demand.daily_requests >= 1e7 and planet.duration_s == 86400


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_sizing_rejects_non_finite_loads(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        servers_for(bad, 0.01)
    with pytest.raises(ValueError, match="finite"):
        erlang_b(10, bad)
    with pytest.raises(ValueError, match="finite"):
        servers_for(10.0, bad)


def _exact_erlang_b(n: int, a: float) -> float:
    """The recursion, started 10·√A + 10 below min(N, A) (no approximation at any size)."""
    b = 1.0
    for k in range(max(0, min(n, int(a)) - int(10 * math.sqrt(a)) - 10) + 1, n + 1):
        b = a * b / (k + a * b)
    return b


def test_sizing_a_billion_erlangs_takes_no_time_proportional_to_the_load() -> None:
    a = 1e9
    for target in (0.01, 1e-6):
        t0 = time.perf_counter()
        n = servers_for(a, target)
        assert time.perf_counter() - t0 < 1.0
        # scale: a pool carries at most N erlangs, so N ≥ A·(1 − target); square-root staffing: N ≤ A + z·√A
        assert a * (1 - target) <= n <= a + 5 * math.sqrt(a)
        assert abs(n - a) / a <= 0.01
        # and the exact recursion agrees to a few GPUs in a billion
        assert _exact_erlang_b(n + 3, a) <= target < _exact_erlang_b(n - 3, a)
    t0 = time.perf_counter()
    assert servers_for(1e300, 0.01) >= 0.99e300  # absurd but finite: still answers at once
    assert erlang_b(10**9, 1e3) == 0.0 and erlang_b(int(1e12), 1e12) < 1e-5
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("a", [1e6, 1e7, 1e8])
@pytest.mark.parametrize("target", [0.5, 0.01, 1e-4, 1e-9])
def test_the_approximation_above_the_threshold_agrees_with_the_exact_recursion(a: float, target: float) -> None:
    from framefleet.sim.capacity import _erlang_b_normal, _servers_normal

    exact = servers_for(a, target)
    assert erlang_b(exact, a) <= target < erlang_b(exact - 1, a)
    approx = _servers_normal(a, target)
    assert abs(approx - exact) <= max(3, 1e-4 * exact), (approx, exact)
    assert _erlang_b_normal(exact, a) == pytest.approx(erlang_b(exact, a), rel=0.05)


CAPACITY_ARGS = ("capacity", "--peak-to-mean", "2", "--target-blocking", "0.01", "--json")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--service-time", "inf"), ("--service-time", "nan"), ("--service-time", "1e200"),
     ("--daily-requests", "1e300"), ("--daily-requests", "inf"), ("--target-blocking", "nan")],
)  # fmt: skip
def test_capacity_cli_rejects_non_finite_and_absurd_inputs_at_once(tmp_path: Path, flag: str, value: str) -> None:
    regions = tmp_path / "regions.toml"
    regions.write_text('[[regions]]\nname = "x"\n')
    args = {"--daily-requests": "1e6", "--service-time": "4", "--regions": str(regions), flag: value}
    t0 = time.monotonic()
    proc = run_cli(*CAPACITY_ARGS, *itertools.chain.from_iterable(args.items()))
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = one_json(proc.stdout)["error"]
    assert err["type"] == "InputError" and err["message"].startswith(flag) and "e.g." in err["message"], err
    assert "internal error" not in proc.stderr and proc.stderr.startswith(f"error: {flag}")


def test_capacity_cli_rejects_a_load_too_big_to_plan_naming_both_options(tmp_path: Path) -> None:
    regions = tmp_path / "regions.toml"
    regions.write_text('[[regions]]\nname = "x"\n')
    proc = run_cli(*CAPACITY_ARGS, "--daily-requests", "1e12", "--service-time", "3600", "--regions", str(regions))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    message = one_json(proc.stdout)["error"]["message"]
    assert "--daily-requests" in message and "--service-time" in message
