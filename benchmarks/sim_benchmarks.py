"""Simulator benchmarks, each against its named baseline in the same run (ratios, not timings).

    .venv/bin/python benchmarks/sim_benchmarks.py          # ~5 minutes; writes benchmarks/results/sim.json + PNGs

1. Storm and cure: scenarios/storm.toml (pinned, naive immediate retries) against storm-cured.toml (pinned,
   scheduling jitter + full-jitter backoff + retry budget), and global-quick-retries.toml.
2. Surge and outage: scenarios/surge.toml and outage.toml with the traffic manager against local-only.
3. Scale: scenarios/planet-day.toml, a simulated day of 12 million requests over 12 regions in event mode;
   simulated requests per wall second. scenarios/planet-1b.toml: 1e9 requests a day in fluid mode.
4. Fluid against event: planet-day.toml in both modes, as planned and at 1.7x the planned demand during
   the busiest hours; differences in success, attempts, utilization, cross-region share.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from framefleet.sim import SimReport, load_scenario, plot_reports, simulate

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
KEYS = ("requests", "success_rate", "worst_bucket_success", "attempts_per_request", "cross_region_share",
        "utilization", "latency_ms", "wall_s", "requests_per_wall_s")  # fmt: skip


def run(name: str, **overrides: Any) -> SimReport:
    mode = overrides.pop("mode", None)
    sc = replace(load_scenario(ROOT / "scenarios" / f"{name}.toml"), **overrides)
    report = simulate(sc, mode=mode)
    t = report.to_dict()
    print(f"  {name} ({report.mode}, {sc.policy}): " + ", ".join(f"{k} {t[k]}" for k in KEYS[:6]), file=sys.stderr)
    return report


def pick(r: SimReport) -> dict[str, Any]:
    return {k: r.totals[k] for k in KEYS}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    print("storm and cure", file=sys.stderr)
    storm, cured, glob = run("storm"), run("storm-cured"), run("global-quick-retries")
    plot_reports([storm, cured, glob], OUT / "sim-storm.png", "pinned + quick retries vs the cure vs global routing")
    results["storm"] = {
        "storm": pick(storm),
        "storm_cured": pick(cured),
        "global_quick_retries": pick(glob),
        "attempt_amplification_storm_vs_cured": round(
            storm.totals["attempts_per_request"] / cured.totals["attempts_per_request"], 3
        ),
        "success_dip_pp": round(100 * (cured.totals["success_rate"] - storm.totals["success_rate"]), 2),
    }
    for name, region in (("surge", "ap-south"), ("outage", "eu-west")):
        print(name, file=sys.stderr)
        traffic, local = run(name), run(name, policy="local-only")
        plot_reports([traffic, local], OUT / f"sim-{name}.png", f"{name}: traffic manager vs local-only")
        results[name] = {
            "traffic": pick(traffic) | {f"{region}_success": traffic.totals["per_region"][region]["success_rate"]},
            "local_only": pick(local) | {f"{region}_success": local.totals["per_region"][region]["success_rate"]},
        }
    print("scale", file=sys.stderr)
    day, fluid_day, billion = run("planet-day"), run("planet-day", mode="fluid"), run("planet-1b")
    plot_reports([day, fluid_day], OUT / "sim-planet-day.png", "a simulated day, 12 regions: event vs fluid")
    plot_reports([billion], OUT / "sim-planet-1b.png", "1e9 requests a day (fluid)")
    results["scale"] = {
        "planet_day_event": pick(day) | {"regions": len(day.regions)},
        "planet_1b_fluid": pick(billion) | {"gpus": billion.totals["gpus"]},
    }
    per_region_util = max(
        abs(v["utilization"] - fluid_day.totals["per_region"][k]["utilization"])
        for k, v in day.totals["per_region"].items()
    )
    results["fluid_vs_event"] = {
        "event": pick(day),
        "fluid": pick(fluid_day),
        "success_diff_pp": round(100 * abs(day.totals["success_rate"] - fluid_day.totals["success_rate"]), 3),
        "utilization_diff_pp": round(100 * abs(day.totals["utilization"] - fluid_day.totals["utilization"]), 3),
        "max_region_utilization_diff_pp": round(100 * per_region_util, 3),
        "speedup_fluid_vs_event": round(day.totals["wall_s"] / fluid_day.totals["wall_s"], 1),
    }
    print("fluid against event, stressed", file=sys.stderr)
    hot = {"duration_s": 3 * 3600.0, "start_utc_h": 22.0}
    sc = load_scenario(ROOT / "scenarios" / "planet-day.toml")
    hot["demand"] = replace(sc.demand, daily_requests=2e7)  # 1.7x the planned demand, at the busiest hours
    ev, fl = run("planet-day", **hot), run("planet-day", mode="fluid", **hot)
    results["fluid_vs_event_stressed"] = {
        "setup": "planet-day.toml, 3 busiest hours (from 22:00 UTC), 2e7 requests/day: 1.7x the plan",
        "event": pick(ev),
        "fluid": pick(fl),
        "success_diff_pp": round(100 * abs(ev.totals["success_rate"] - fl.totals["success_rate"]), 3),
        "attempts_diff": round(abs(ev.totals["attempts_per_request"] - fl.totals["attempts_per_request"]), 4),
        "utilization_diff_pp": round(100 * abs(ev.totals["utilization"] - fl.totals["utilization"]), 3),
        "cross_region_share_diff_pp": round(
            100 * abs(ev.totals["cross_region_share"] - fl.totals["cross_region_share"]), 3
        ),
    }
    (OUT / "sim.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
