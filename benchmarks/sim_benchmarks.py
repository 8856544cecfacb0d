"""Simulator benchmarks, each against its named baseline in the same run (ratios, not timings).

    .venv/bin/python benchmarks/sim_benchmarks.py          # ~5 minutes; writes benchmarks/results/sim.json + PNGs

1. Storm and cure: scenarios/storm.toml (pinned, naive immediate retries) against storm-cured.toml (pinned,
   scheduling jitter + full-jitter backoff + retry budget), and global-quick-retries.toml.
2. Surge and outage: scenarios/surge.toml and outage.toml with the traffic manager against local-only.
3. Scale: scenarios/planet-day.toml, a simulated day of 12 million requests over 12 regions in event mode;
   simulated requests per wall second. scenarios/planet-1b.toml: 1e9 requests a day in fluid mode.
4. Fluid against event: planet-day.toml in both modes, as planned and at 1.7x the planned demand during
   the busiest hours; differences in success, attempts, utilization, cross-region share.
5. Spill at planet scale: scenarios/planet-spill.toml (the busiest hour at 2.5x the plan) with the spill policy
   against today's traffic policy and global routing, and the pooled limit (global in fluid mode: Erlang-B of
   every GPU as one pool, no transit); success, cross-region share, latency and the round trip added per
   served request.

    .venv/bin/python benchmarks/sim_benchmarks.py --only spill     # section 5 alone (~4 minutes)
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


def added_rtt_ms(r: SimReport, rtt_ms: dict[str, dict[str, float]]) -> float:
    """The mean round trip a served request paid to cross regions (0 for one served at home)."""
    flows = r.series.flows.sum(axis=0)
    total = float(flows.sum())
    paid = sum(float(flows[i, j]) * rtt_ms[a][b] for i, a in enumerate(r.regions) for j, b in enumerate(r.regions))
    return round(paid / total, 2) if total else 0.0


def spill_section() -> dict[str, Any]:
    """Section 5: planet-spill.toml under spill, traffic and global, and the pooled limit, in one run."""
    print("spill at planet scale", file=sys.stderr)
    sc = load_scenario(ROOT / "scenarios" / "planet-spill.toml")
    runs = {p: run("planet-spill", policy=p) for p in ("spill", "traffic", "global")}
    pooled = run("planet-spill", policy="global", mode="fluid")
    plot_reports(
        list(runs.values()), OUT / "sim-planet-spill.png", "planet, busiest hour at 2.5x: spill vs traffic vs global"
    )
    out: dict[str, Any] = {
        p: pick(r) | {"added_rtt_ms_per_served": added_rtt_ms(r, sc.rtt_ms)} for p, r in runs.items()
    }
    out["pooled_limit_fluid_global"] = {k: pooled.totals[k] for k in ("success_rate", "attempts_per_request")}
    spill, traffic = runs["spill"].totals, runs["traffic"].totals
    out["spill_vs_traffic"] = {
        "success_pp": round(100 * (spill["success_rate"] - traffic["success_rate"]), 3),
        "cross_region_share_pp": round(100 * (spill["cross_region_share"] - traffic["cross_region_share"]), 3),
        "p50_ms": round(spill["latency_ms"]["p50"] - traffic["latency_ms"]["p50"], 1),
        "p99_ms": round(spill["latency_ms"]["p99"] - traffic["latency_ms"]["p99"], 1),
        "success_pp_below_pooled_limit": round(100 * (pooled.totals["success_rate"] - spill["success_rate"]), 3),
    }
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="simulator benchmarks")
    ap.add_argument("--only", choices=["spill"], help="run one section and merge it into sim.json")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only == "spill":
        path = OUT / "sim.json"
        merged = json.loads(path.read_text()) if path.exists() else {}
        merged["spill"] = spill_section()
        path.write_text(json.dumps(merged, indent=2) + "\n")
        print(json.dumps(merged["spill"], indent=2))
        return
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
    results["spill"] = spill_section()
    (OUT / "sim.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
