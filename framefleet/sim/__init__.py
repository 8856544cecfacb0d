"""Planet-scale simulation of the serving fleet on simulated time, driving the real policy code
(serve/traffic.py, serve/retry.py, serve/balance.py), and the capacity planner.

    framefleet simulate scenarios/storm.toml --json --plot storm.png
    framefleet capacity --daily-requests 1e9 --peak-to-mean 2 --service-time 4 --target-blocking 0.01 \
        --regions scenarios/planet-12.toml
"""

from __future__ import annotations

from dataclasses import replace

from framefleet.sim.capacity import RegionPlan, erlang_b, plan_capacity, servers_for
from framefleet.sim.engine import EventSimulation, Progress
from framefleet.sim.fluid import simulate_fluid
from framefleet.sim.report import SimReport, plot_reports
from framefleet.sim.scenario import Scenario, load_regions, load_scenario, parse_scenario

__all__ = [
    "RegionPlan",
    "Scenario",
    "SimReport",
    "erlang_b",
    "load_regions",
    "load_scenario",
    "parse_scenario",
    "plan_capacity",
    "plot_reports",
    "servers_for",
    "simulate",
]


def simulate(scenario: Scenario, progress: Progress | None = None, mode: str | None = None) -> SimReport:
    """Run `scenario` in its own mode (or `mode`: "event" | "fluid")."""
    sc = replace(scenario, mode=mode) if mode is not None else scenario
    if sc.mode == "fluid":
        return simulate_fluid(sc, progress)
    return EventSimulation(sc, progress).run()
