"""Spill routing against the Erlang-B limits (issue 18): the live fleet and the simulator, every policy, one run.

    .venv/bin/python benchmarks/spill_benchmark.py          # ~17 minutes; or as a section of serve_benchmarks.py
    .venv/bin/python benchmarks/spill_benchmark.py --repeat 8   # the 3x case 8 times per policy (~9 minutes)

The fleet is examples/regions-3.toml (4, 3 and 2 workers of 200 ± 50 ms: 45 requests/s). Cases, open-loop
Poisson arrivals split across source regions by capacity, the jittered budgeted client:
- skewed: --rate 20 with us-east ×2 (28.9 requests/s offered, 64% of capacity);
- overload 1.33×: 60 requests/s; overload 3×: 135 requests/s.
Policies: local-only, traffic (utilization headroom, spill only where the table planned headroom), global (one
pool, blind to locality) and spill (this issue). For each: success, goodput, cross-region share, p50/p99 latency,
and, live, the spills the gateway counted per (source, target).

The limits come from Erlang-B in the same run: "pooled" treats the 9 workers as one pool with no transit,
"isolated" each region as its own pool with its own offered load. Both are for first attempts; the client's
budgeted retries (≤ 10% more attempts) can add a little on top.

Goodput is reported two ways. `goodput_rps` = success rate × offered rate: steady-state requests served per
second, what Erlang-B's carried load A·(1 − B)/E[S] measures, and what the acceptance checks use. The load
test's own `goodput_rps_loadtest` divides by the time until the last retry ended (the 25 s window plus a few
seconds of tail), so it reads ~10% lower on a short run; it is kept for comparison with serve.json.

`--fleet examples/regions-3-slow.toml` runs the same cases on the same fleet with time stretched 5x (results in
serve_spill-regions-3-slow.{json,md}): the same erlangs and limits at a fifth of the request rate, for a machine
whose cores are shared (a 200 ms service then measures the scheduler's delays as much as the routing).

The simulator runs the same fleet (same regions, RTTs, service time law, traffic knobs, Retry-After, client)
through sim/engine.py, which drives the same RoutingState as the gateway, for 600 simulated seconds.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

from framefleet.fleet import LocalFleet
from framefleet.serve.config import FleetConfig, load_fleet
from framefleet.serve.erlang import carried_erlangs
from framefleet.serve.loadtest import LoadReport, offered_rates, run_load
from framefleet.sim.engine import EventSimulation
from framefleet.sim.scenario import Scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
FLEET = "examples/regions-3.toml"
# The load test's --rate as a multiple of the fleet's capacity (on regions-3.toml's 45 rps: 20, 60 and 135 rps),
# and its --skew. As multiples, the cases carry over to a time-scaled copy of the fleet (--fleet).
# The 3x case is also run REPEATS times per policy (spill, traffic): one 25 s figure there spreads about ±1.5
# points, as much as the distance to the 95% line, so the acceptance also reports the mean.
REPEATS = 8
SETTLE_S = 3.0  # idle seconds before each live run: the gateway's demand window forgets the previous one
CASES: dict[str, tuple[float, dict[str, float]]] = {
    "skewed": (20 / 45, {"us-east": 2.0}),
    "overload_1.33x": (60 / 45, {}),
    "overload_3x": (3.0, {}),
}
POLICIES = ("local-only", "traffic", "global", "spill")
ADMIN = {"Authorization": "Bearer dev-admin-key"}


def erlang_limits(config: FleetConfig, rates: dict[str, float]) -> dict[str, float]:
    """Success and goodput (requests/s) of the fleet as one pool and as isolated pools, by Erlang-B."""
    mean_s = config.service.mean_s
    offered = sum(rates.values())
    slots = {r.name: r.workers for r in config.regions}
    pooled = carried_erlangs(sum(slots.values()), offered * mean_s) / mean_s
    isolated = sum(carried_erlangs(slots[r], lam * mean_s) / mean_s for r, lam in rates.items())
    return {
        "offered_rps": round(offered, 3),
        "pooled_goodput_rps": round(pooled, 3),
        "pooled_success": round(pooled / offered, 4),
        "isolated_goodput_rps": round(isolated, 3),
        "isolated_success": round(isolated / offered, 4),
    }


def fleet_scenario(config: FleetConfig, rates: dict[str, float], policy: str, duration_s: float, seed: int) -> Scenario:
    """The fleet and the load test's arrivals as a simulator scenario (flat demand, the fleet's service law)."""
    total = sum(rates.values())
    tr, svc = config.traffic, config.service
    doc: dict[str, Any] = {
        "simulation": {"duration_s": duration_s, "seed": seed, "bucket_s": duration_s, "mode": "event"},
        "regions": [
            {"name": r.name, "gpus": r.workers, "share": max(rates[r.name] / total, 1e-9)} for r in config.regions
        ],
        "rtt_ms": {a: {b: config.rtt_ms[a][b] for b in config.region_names if b != a} for a in config.region_names},
        "demand": {"daily_requests": total * 86400.0, "peak_to_mean": 1.0},
        "service": {"mean_s": svc.mean_s, "spread_s": svc.spread_s, "kind": svc.kind},
        "routing": {
            "policy": policy,
            "retry_after_s": float(config.gateway.retry_after_s),
            "target_utilization": tr.target_utilization,
            "hysteresis": tr.hysteresis,
            "period_s": tr.period_s,
            "ring_radii_ms": [x for x in tr.ring_radii_ms if math.isfinite(x)],
            "target_blocking": tr.target_blocking,
            "spill_budget_ms": tr.spill_budget_ms,
        },
        "client": {"preset": "jittered"},
    }
    # through TOML's types (the parser expects what a file gives it)
    return parse_scenario(tomllib.loads(_toml(doc)), "spill benchmark")


def _toml(doc: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return repr(float(v)) if isinstance(v, float) else repr(v)

    lines = []
    for table, body in doc.items():
        for item in body if isinstance(body, list) else [body]:
            lines.append(f"[[{table}]]" if isinstance(body, list) else f"[{table}]")
            lines += [f"{json.dumps(k)} = {value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _spills(url: str) -> dict[str, float]:
    """The gateway's spill counter by "source->target" (summed over rules)."""
    text = httpx.get(f"{url}/metrics", headers=ADMIN, timeout=10).text
    out: dict[str, float] = {}
    for m in re.finditer(r"framefleet_gateway_spills_total\{(.*?)\} ([0-9.e+]+)", text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = f"{labels['source']}->{labels['target']}"
        out[key] = out.get(key, 0.0) + float(m.group(2))
    return out


def _live_row(report: LoadReport) -> dict[str, Any]:
    return {
        "success": report.success_rate,
        "goodput_rps": round(report.success_rate * report.offered_rps, 2),
        "goodput_rps_loadtest": report.goodput_rps,
        "cross_region_share": report.cross_region_share,
        "latency_ms": report.latency_ms,
        "attempts_per_request": report.attempts_per_request,
        "requests": report.requests,
        "launch_lag_ms_p99": report.launch_lag_ms_p99,
    }


def live(fleet_toml: str, duration_s: float, settle_s: float = SETTLE_S) -> dict[str, dict[str, Any]]:
    """Every case on one fleet per policy (real gateway and worker processes; no store: the synthetic task
    needs none, and its per-request write would only take CPU from the fleet on a small machine)."""
    out: dict[str, dict[str, Any]] = {case: {} for case in CASES}
    for policy in POLICIES:
        with LocalFleet(ROOT / fleet_toml, policy=policy, seed=1, store=False) as fleet:
            for case, (factor, skew) in CASES.items():
                rate = factor * fleet.config.capacity_rps
                time.sleep(settle_s)  # the gateway's demand window forgets the previous case
                before = _spills(fleet.url)
                report = asyncio.run(
                    run_load(fleet.url, fleet.config, rate=rate, duration_s=duration_s, skew=skew, seed=2)
                )
                after = _spills(fleet.url)
                row = _live_row(report) | {
                    "spills": {k: round(v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0)}
                }
                out[case][policy] = row
                print(f"  live {case} {policy}: {_line(row)}", file=sys.stderr)
    return out


def simulated(config: FleetConfig, duration_s: float, seed: int = 1) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {case: {} for case in CASES}
    for case, (factor, skew) in CASES.items():
        rates = offered_rates(config, factor * config.capacity_rps, skew)
        for policy in POLICIES:
            sim = EventSimulation(fleet_scenario(config, rates, policy, duration_s, seed))
            t = sim.run().to_dict()
            row = {
                "success": t["success_rate"],
                "goodput_rps": round(t["success_rate"] * sum(rates.values()), 2),
                "cross_region_share": t["cross_region_share"],
                "latency_ms": t["latency_ms"],
                "attempts_per_request": t["attempts_per_request"],
                "requests": t["requests"],
                "second_tries": sim.second_tries,
            }
            out[case][policy] = row
            print(f"  sim  {case} {policy}: {_line(row)}", file=sys.stderr)
    return out


def _line(row: dict[str, Any]) -> str:
    return (
        f"success {row['success']:.4f}, goodput {row['goodput_rps']} rps, cross {row['cross_region_share']}, "
        f"p99 {row['latency_ms']['p99']} ms"
    )


def acceptance(limits: dict[str, dict[str, float]], runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 18's checks for the spill policy on one set of runs (live or simulated)."""
    out: dict[str, Any] = {}
    for case in ("overload_1.33x", "overload_3x"):
        got, pooled = runs[case]["spill"]["goodput_rps"], limits[case]["pooled_goodput_rps"]
        out[f"{case}_goodput_over_pooled"] = round(got / pooled, 4)
        out[f"{case}_within_5pct_of_pooled"] = got >= 0.95 * pooled
    got, pooled = runs["skewed"]["spill"]["success"], limits["skewed"]["pooled_success"]
    out["skewed_points_from_pooled"] = round(100 * (got - pooled), 2)
    out["skewed_within_1_5_points_of_pooled"] = got >= pooled - 0.015
    return out


def agreement(live_runs: dict[str, dict[str, Any]], sim_runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Simulator against fleet: success in percentage points and goodput in percent, per case and policy."""
    rows = {}
    for case in CASES:
        for policy in POLICIES:
            a, b = live_runs[case][policy], sim_runs[case][policy]
            rows[f"{case}/{policy}"] = {
                "success_pp": round(100 * (b["success"] - a["success"]), 2),
                "goodput_pct": round(100 * (b["goodput_rps"] / max(a["goodput_rps"], 1e-9) - 1), 2),
                "cross_share_pp": round(100 * (b["cross_region_share"] - a["cross_region_share"]), 2),
            }
    return {
        "sim_minus_live": rows,
        "max_abs_success_pp": max(abs(r["success_pp"]) for r in rows.values()),
        "max_abs_cross_share_pp": max(abs(r["cross_share_pp"]) for r in rows.values()),
    }


def markdown(results: dict[str, Any], name: str = "serve_spill") -> str:
    lines = [
        "# Spill routing against the Erlang-B limits (issue 18)",
        "",
        f"Fleet `{results['fleet']}` ({results['fleet_summary']}). Live: {results['live_duration_s']:g} s per case, "
        f"one run each; simulator: {results['sim_duration_s']:g} simulated s. Goodput = success × offered rps.",
        "",
        "| case | policy | live success | live goodput | live cross | live p99 ms | sim success | sim goodput "
        "| sim cross | sim p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        lim = results["limits"][case]
        for policy in POLICIES:
            a, b = results["live"][case][policy], results["sim"][case][policy]
            lines.append(
                f"| {case} | {policy} | {a['success']:.3f} | {a['goodput_rps']} | {a['cross_region_share']:.3f} "
                f"| {a['latency_ms']['p99']} | {b['success']:.3f} | {b['goodput_rps']} "
                f"| {b['cross_region_share']:.3f} | {b['latency_ms']['p99']} |"
            )
        lines.append(
            f"| {case} | *Erlang-B* | pooled {lim['pooled_success']:.3f} / isolated {lim['isolated_success']:.3f} "
            f"| pooled {lim['pooled_goodput_rps']} / isolated {lim['isolated_goodput_rps']} | | | | | | |"
        )
    rep = results.get("repeat_3x")
    if rep:
        lines += [
            "",
            f"The 3x case again, {rep['runs']} live runs of {rep['duration_s']:g} s per policy, a fresh arrival seed "
            f"each (goodput rps, mean ± sd; against the pooled {rep['pooled_rps']} rps, ± one standard error):",
            "",
            "| policy | runs | mean ± sd | of pooled |",
            "|---|---|---|---|",
            *(
                f"| {p} | {', '.join(f'{g:g}' for g in rep[p]['goodput_rps'])} | {rep[p]['mean_rps']} ± "
                f"{rep[p]['sd_rps']} | {100 * rep[p]['mean_over_pooled']:.1f}% ± {100 * rep[p]['se_over_pooled']:.1f} |"
                for p in ("spill", "traffic")
            ),
        ]
    lines += ["", "Acceptance (spill policy):", "", "```", json.dumps(results["acceptance"], indent=2), "```", ""]
    ag = results["agreement"]
    lines += [
        f"Simulator against fleet: success within {ag['max_abs_success_pp']} points, cross-region share within "
        f"{ag['max_abs_cross_share_pp']} points (every case and policy; per-row figures in {name}.json).",
        "",
    ]
    return "\n".join(lines)


def run(
    live_duration_s: float = 25.0, sim_duration_s: float = 600.0, fleet: str = FLEET, repeats: int = REPEATS
) -> dict[str, Any]:
    t0 = time.monotonic()
    config = load_fleet(ROOT / fleet)
    limits = {
        case: erlang_limits(config, offered_rates(config, factor * config.capacity_rps, skew))
        for case, (factor, skew) in CASES.items()
    }
    print("spill: the simulator", file=sys.stderr)
    sim_runs = simulated(config, sim_duration_s)
    print("spill: the live fleet", file=sys.stderr)
    live_runs = live(fleet, live_duration_s)
    repeated = repeat("overload_3x", repeats, live_duration_s, fleet, write=False) if repeats else None
    acceptance_live = acceptance(limits, live_runs)
    if repeated is not None:
        ratio = repeated["spill"]["mean_over_pooled"]
        acceptance_live[f"overload_3x_mean_of_{repeats}_goodput_over_pooled"] = ratio
        acceptance_live[f"overload_3x_mean_of_{repeats}_standard_error"] = repeated["spill"]["se_over_pooled"]
        acceptance_live[f"overload_3x_mean_of_{repeats}_within_5pct_of_pooled"] = ratio >= 0.95
    results = {
        "fleet": fleet,
        "fleet_summary": (
            f"{'/'.join(str(r.workers) for r in config.regions)} workers, {config.service.mean_s * 1000:g} ± "
            f"{config.service.spread_s * 1000:g} ms, {config.capacity_rps:g} rps"
        ),
        "live_duration_s": live_duration_s,
        "sim_duration_s": sim_duration_s,
        "limits": limits,
        "live": live_runs,
        "sim": sim_runs,
        "repeat_3x": repeated,
        "acceptance": {"live": acceptance_live, "sim": acceptance(limits, sim_runs)},
        "agreement": agreement(live_runs, sim_runs),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    name = "serve_spill" if fleet == FLEET else f"serve_spill-{Path(fleet).stem}"
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / f"{name}.md").write_text(markdown(results, name))
    return results


def repeat(case: str, n: int, duration_s: float, fleet: str = FLEET, *, write: bool = True) -> dict[str, Any]:
    """One case, `n` live runs per policy (spill and traffic) with a fresh arrival seed each, on one fleet per
    policy: the run-to-run spread of a single 25 s figure, which at 3x is as large as the distance to the line.
    `write`: also save it alone as serve_spill-repeat[-<fleet>].json (the --repeat mode)."""
    if n < 2:
        raise ValueError(f"a repeat needs at least 2 runs for a spread, got {n}")
    config = load_fleet(ROOT / fleet)
    factor, skew = CASES[case]
    pooled = erlang_limits(config, offered_rates(config, factor * config.capacity_rps, skew))["pooled_goodput_rps"]
    out: dict[str, Any] = {"fleet": fleet, "case": case, "runs": n, "duration_s": duration_s, "pooled_rps": pooled}
    for policy in ("spill", "traffic"):
        with LocalFleet(ROOT / fleet, policy=policy, seed=1, store=False) as live_fleet:
            got = []
            for i in range(n):
                time.sleep(SETTLE_S)
                report = asyncio.run(run_load(live_fleet.url, live_fleet.config, rate=factor * config.capacity_rps,
                                              duration_s=duration_s, skew=skew, seed=10 + i))  # fmt: skip
                got.append(_live_row(report)["goodput_rps"])
                print(f"  repeat {case} {policy} {i + 1}/{n}: {got[-1]} rps", file=sys.stderr)
        mean, sd = statistics.mean(got), statistics.stdev(got)
        out[policy] = {
            "goodput_rps": got,
            "mean_rps": round(mean, 2),
            "sd_rps": round(sd, 2),
            "mean_over_pooled": round(mean / pooled, 4),
            "se_over_pooled": round(sd / math.sqrt(n) / pooled, 4),  # standard error of that ratio
        }
    if write:
        name = "serve_spill-repeat" if fleet == FLEET else f"serve_spill-repeat-{Path(fleet).stem}"
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live-duration", type=float, default=25.0, help="seconds of load per live case")
    ap.add_argument("--sim-duration", type=float, default=600.0, help="simulated seconds per case")
    ap.add_argument("--fleet", default=FLEET, help="fleet TOML (results: serve_spill-<its name>.json)")
    ap.add_argument("--repeat", type=int, default=0, metavar="N",
                    help="instead: N live runs of --case per policy (spill, traffic), mean and spread")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=REPEATS,
                    help="live runs of the 3x case per policy in the full run (0: none)")  # fmt: skip
    ap.add_argument("--case", default="overload_3x", choices=list(CASES), help="the case --repeat runs")
    args = ap.parse_args()
    if 1 in (args.repeat, args.repeats) or min(args.repeat, args.repeats) < 0:
        ap.error("--repeat and --repeats take 0 (none) or at least 2 runs: one run has no spread")
    if args.repeat:
        print(json.dumps(repeat(args.case, args.repeat, args.live_duration, args.fleet), indent=2))
        sys.exit(0)
    res = run(args.live_duration, args.sim_duration, args.fleet, args.repeats)
    print(json.dumps({k: res[k] for k in ("limits", "acceptance", "wall_s")}, indent=2))
