"""`framefleet loadtest --task animate`: real photographs through a real one-worker fleet, the workers' service
times in the report, and `--scenario-out` writing a scenario the simulator loads with that service time."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import pytest

from framefleet.errors import FramefleetError
from framefleet.serve.config import parse_fleet
from framefleet.serve.loadtest import Sample, arrivals, scenario_toml, summarize
from framefleet.sim import load_scenario
from framefleet.sim.scenario import Scenario

from conftest import one_json, run_cli

SOLO = """
[[regions]]
name = "solo"
workers = 1
tasks = ["animate"]
"""

TWO = """
[gateway]
retry_after_s = 2

[[regions]]
name = "east"
workers = 2
tasks = ["animate", "synthetic"]

[[regions]]
name = "west"
workers = 1
tasks = ["synthetic"]

[rtt_ms]
east = { west = 40 }
"""


def _sample(source: str, ok: bool, service_s: float | None) -> Sample:
    return Sample(source, 0.5, ok, 1 if ok else 3, 1.0, "east" if ok else None, "", 1.0, 0.0, service_s)


def test_scenario_out_loads_with_the_measured_service_time(tmp_path: Path) -> None:
    config = parse_fleet(tomllib.loads(TWO), "two.toml")
    samples = [_sample("east", True, s) for s in (0.8, 1.0, 1.2, 1.0)] + [_sample("west", False, None)]
    report = summarize(samples, config, 30.0, 1.5, task="animate")
    report.offered_rps_by_region = {"east": 1.0, "west": 0.5}
    assert report.service_ms["mean"] == pytest.approx(1000.0) and report.service_ms["n"] == 4
    assert report.service_ms["cv"] == pytest.approx(0.1633, abs=1e-3)
    assert report.capacity_rps == pytest.approx(2.0)  # the two animate slots / the measured 1 s

    path = tmp_path / "measured.toml"
    path.write_text(scenario_toml(config, report, retry="naive", policy="local-only", seed=7))
    sc: Scenario = load_scenario(path)
    assert sc.service.kind == "lognormal"
    assert sc.service.mean_s == pytest.approx(1.0) and sc.service.spread_s == pytest.approx(0.16330, abs=1e-4)
    assert sc.gpus == {"east": 2, "west": 0}  # west hosts no animate
    assert sc.shares == pytest.approx({"east": 2 / 3, "west": 1 / 3})
    assert sc.demand.mean_rps == pytest.approx(1.5) and sc.demand.peak_to_mean == 1.0
    assert sc.duration_s == 30.0 and sc.seed == 7 and sc.mode == "event"
    assert sc.policy == "local-only" and sc.retry_after_s == 2.0
    assert sc.client.budget_ratio is None and sc.client.max_attempts == 3  # the naive preset
    assert sc.rtt_ms["east"]["west"] == 40.0

    nothing = summarize([_sample("east", False, None)], config, 30.0, 1.5, task="animate")
    with pytest.raises(FramefleetError, match="no request succeeded"):
        scenario_toml(config, nothing, retry="jittered")


def test_loadtest_options_are_checked_before_any_fleet_starts(tmp_path: Path) -> None:
    toml = tmp_path / "two.toml"
    toml.write_text(TWO.replace('"animate", ', ""))
    r = run_cli("loadtest", "--regions", str(toml), "--rate", "1", "--task", "sleep", "--json")
    assert r.returncode == 2 and "--task" in r.stdout and "synthetic" in r.stdout
    r = run_cli("loadtest", "--regions", str(toml), "--rate", "1", "--task", "animate", "--json")
    assert r.returncode == 2 and "no region" in r.stdout
    r = run_cli("loadtest", "--regions", str(toml), "--rate", "1", "--scenario-out", str(tmp_path / "no" / "x.toml"))
    assert r.returncode == 2 and "--scenario-out" in r.stderr


def test_loadtest_animate_against_a_real_fleet(tmp_path: Path) -> None:
    """One worker, two arrivals (seed 5: at 0.98 s and 2.33 s); the first always finds the worker idle."""
    assert len(arrivals({"solo": 1.0}, 3.0, random.Random(5))) == 2
    toml = tmp_path / "solo.toml"
    toml.write_text(SOLO)
    out = tmp_path / "measured.toml"
    r = run_cli(
        "loadtest", "--regions", str(toml), "--task", "animate", "--rate", "1", "--duration", "3", "--seed", "5",
        "--scenario-out", str(out), "--json",
        env={"FRAMEFLEET_HOME": str(tmp_path / "home"), "FRAMEFLEET_DATABASE_URL": ""},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-2000:]
    rep = one_json(r.stdout)
    assert rep["task"] == "animate" and rep["requests"] == 2 and rep["succeeded"] >= 1, rep
    svc = rep["service_ms"]
    assert svc["n"] == rep["succeeded"] and svc["mean"] > 0 and svc["p50"] <= svc["p99"]
    assert rep["capacity_rps"] == pytest.approx(1000 / svc["mean"], abs=0.006)  # rounded to 0.01
    assert rep["latency_ms"]["p50"] >= svc["p50"] * 0.99  # the caller waits at least the worker's service time
    sc = load_scenario(out)
    assert sc.service.mean_s == pytest.approx(svc["mean"] / 1000)
    assert sc.gpus == {"solo": 1} and sc.demand.mean_rps == pytest.approx(1.0) and sc.duration_s == 3.0
