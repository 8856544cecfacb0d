"""Serving benchmarks: each against its named baseline, measured in the same run (ratios, not timings).

    .venv/bin/python benchmarks/serve_benchmarks.py               # ~13 minutes; writes benchmarks/results/
    .venv/bin/python benchmarks/serve_benchmarks.py --only spill  # section 3 alone (~17 minutes)

1. Demand skew (examples/regions-3.toml: 4, 3, 2 workers, 200 ± 50 ms): ap-south offered 2× its capacity
   (20 rps), us-east and eu-west at 5% of theirs. Traffic manager vs the local-only policy.
   Goal: success ≥ 99% with the traffic manager.
2. Overload (examples/regions-3-overload.toml: 8, 6, 4 workers, 1 s ± 250 ms): total offered load 3× fleet
   capacity (54 rps). Budgeted full-jitter client vs naive immediate retries.
   Goal: goodput ≥ 90% of capacity and ≤ 1.1 attempts per request with the budgeted client; naive ≥ 2.

3. Spill against the Erlang-B limits (benchmarks/spill_benchmark.py): regions-3.toml at 1.33x and 3x overload
   and a skewed load, every policy, live and simulated, with the pooled and isolated limits computed in the
   same run. Writes serve_spill.json and serve_spill.md.

All use the real gateway, worker processes and client, with open-loop Poisson arrivals; the report's
launch_lag_ms_p99 shows whether the load generator kept its schedule on this machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from framefleet.fleet import LocalFleet
from framefleet.serve.loadtest import LoadReport, plot_report, run_load

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"


def one(
    toml: str, *, policy: str, retry: str, rate: float, duration: float, skew: dict[str, float], name: str
) -> LoadReport:
    with LocalFleet(ROOT / toml, policy=policy, seed=1) as fleet:
        report = asyncio.run(
            run_load(fleet.url, fleet.config, rate=rate, duration_s=duration, skew=skew, retry=retry, seed=2)
        )
        plot_report(report, fleet.config, OUT / f"{name}.png", f"{name}: {policy} / {retry}")
    print(
        f"  {name}: success {report.success_rate:.4f}, goodput {report.goodput_rps}/{report.capacity_rps} rps, "
        f"attempts/request {report.attempts_per_request}, cross-region {report.cross_region_share}, "
        f"p50/p99 {report.latency_ms['p50']}/{report.latency_ms['p99']} ms, lag p99 {report.launch_lag_ms_p99} ms",
        file=sys.stderr,
    )
    return report


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description="serving benchmarks")
    ap.add_argument("--only", choices=["spill"], help="run one section (its results file only)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import spill_benchmark

    if args.only == "spill":
        print(json.dumps(spill_benchmark.run()["acceptance"], indent=2))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    print("demand skew: ap-south offered 2x its capacity", file=sys.stderr)
    skew = {"rate": 2.25, "skew": {"ap-south": 40.0}, "duration": 30.0}
    traffic = one(
        "examples/regions-3.toml",
        policy="traffic",
        retry="jittered",
        rate=skew["rate"],
        duration=skew["duration"],
        skew=skew["skew"],
        name="skew-traffic",
    )
    local = one(
        "examples/regions-3.toml",
        policy="local-only",
        retry="jittered",
        rate=skew["rate"],
        duration=skew["duration"],
        skew=skew["skew"],
        name="skew-local-only",
    )
    print("overload: 3x fleet capacity", file=sys.stderr)
    jittered = one(
        "examples/regions-3-overload.toml",
        policy="traffic",
        retry="jittered",
        rate=54.0,
        duration=60.0,
        skew={},
        name="overload-jittered",
    )
    naive = one(
        "examples/regions-3-overload.toml",
        policy="traffic",
        retry="naive",
        rate=54.0,
        duration=60.0,
        skew={},
        name="overload-naive",
    )
    results = {
        "skew": {
            "traffic": traffic.to_dict(),
            "local_only": local.to_dict(),
            "success_ratio_traffic_vs_local_only": round(traffic.success_rate / max(local.success_rate, 1e-9), 3),
            "goal_success_ge_0_99": traffic.success_rate >= 0.99,
        },
        "overload": {
            "jittered": jittered.to_dict(),
            "naive": naive.to_dict(),
            "goodput_over_capacity_jittered": round(jittered.goodput_rps / jittered.capacity_rps, 3),
            "goodput_over_capacity_naive": round(naive.goodput_rps / naive.capacity_rps, 3),
            "attempts_ratio_naive_vs_jittered": round(naive.attempts_per_request / jittered.attempts_per_request, 3),
            "goal_goodput_ge_0_9": jittered.goodput_rps >= 0.9 * jittered.capacity_rps,
            "goal_attempts_le_1_1": jittered.attempts_per_request <= 1.1,
            "naive_attempts_ge_2": naive.attempts_per_request >= 2,
        },
        "wall_s": round(time.monotonic() - t0, 1),
    }
    (OUT / "serve.json").write_text(json.dumps(results, indent=2))
    print("spill against the Erlang-B limits", file=sys.stderr)
    spill = spill_benchmark.run()
    print(
        json.dumps(
            {
                k: {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)} if isinstance(v, dict) else v
                for k, v in results.items()
            },
            indent=2,
        )
    )
    print(json.dumps(spill["acceptance"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
