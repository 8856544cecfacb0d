"""`framefleet simulate` and `framefleet capacity` (registered on the main CLI app)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from framefleet._cli import JsonOpt, app, emit, err, out, run
from framefleet.errors import InputError
from framefleet.serve.balance import POLICIES

MODES = ("event", "fluid")  # as sim.scenario.MODES, without importing the simulator to start the CLI
ProgressFn = Callable[[float, float], None]
# Event mode above this many requests a day would take longer than a person waits for a plan.
AUTO_FLUID_ABOVE = 2e7


@contextmanager
def sim_progress(label: str, enabled: bool) -> Iterator[ProgressFn | None]:
    """A bar over simulated time on stderr, for a person at a terminal (never in --json pipelines' stdout)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    cols = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*cols, console=err, transient=True) as bar:
        task = bar.add_task(label, total=1.0)

        def update(done: float, total: float) -> None:
            bar.update(task, completed=done / total if total else 1.0)

        yield update


def _summary_table(runs: list[dict[str, Any]]) -> Table:
    t = Table(title="simulation", title_justify="left")
    t.add_column("metric")
    for r in runs:
        t.add_column(f"{r['scenario']} ({r['mode']}, {r['policy']})", justify="right")
    for key in ("requests", "success_rate", "worst_bucket_success", "attempts_per_request", "cross_region_share",
                "utilization", "gpus", "wall_s", "requests_per_wall_s"):  # fmt: skip
        t.add_row(key, *(str(r[key]) for r in runs))
    t.add_row("latency_ms p50/p95/p99", *("/".join(str(v) for v in r["latency_ms"].values()) for r in runs))
    return t


@app.command()
def simulate(
    scenarios: Annotated[list[str], typer.Argument(help="Scenario TOML files (scenarios/); several run side by side.")],
    mode: Annotated[str | None, typer.Option(help="event | fluid (default: the scenario's own).")] = None,
    policy: Annotated[
        str | None, typer.Option(help="Override routing.policy: traffic | local-only | global | spill.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override simulation.seed.")] = None,
    plot: Annotated[str | None, typer.Option(help="Write a PNG: success, load per region, cross-region share.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run scenarios on simulated time through the real routing and retry code.

    framefleet simulate scenarios/storm.toml scenarios/storm-cured.toml --json --plot storm.png
    """
    from framefleet.sim import load_scenario, plot_reports
    from framefleet.sim import simulate as run_sim

    def body() -> None:
        if mode is not None and mode not in MODES:
            raise InputError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
        if policy is not None and policy not in POLICIES:
            raise InputError(f"--policy {policy!r}: use one of {', '.join(POLICIES)}")
        if seed is not None and seed < 0:
            raise InputError(f"--seed must be ≥ 0, got {seed}")
        loaded = [load_scenario(p) for p in scenarios]  # every file is checked before anything runs
        reports = []
        for sc in loaded:
            if policy is not None:
                sc = replace(sc, policy=policy)
            if seed is not None:
                sc = replace(sc, seed=seed)
            with sim_progress(f"simulate {sc.name}", True) as progress:
                reports.append(run_sim(sc, progress, mode))
        if plot:
            plot_reports(reports, plot)
        runs = [r.to_dict() for r in reports]
        payload = runs[0] if len(runs) == 1 else {"runs": runs}
        emit(payload, as_json, lambda: out.print(_summary_table(runs)))

    run(as_json, body)


@app.command()
def capacity(
    daily_requests: Annotated[float, typer.Option(help="Requests per day, all regions (e.g. 1e9).")],
    # `[\\[` keeps Rich from reading [[regions]] as markup and dropping it from --help
    regions: Annotated[str, typer.Option("--regions", help="TOML with [\\[regions]] (name, share, utc_offset_h).")],
    peak_to_mean: Annotated[float, typer.Option(help="Diurnal peak / daily mean, in [1, 2].")] = 2.0,
    service_time: Annotated[float, typer.Option(help="Mean GPU seconds per request.")] = 4.0,
    target_blocking: Annotated[float, typer.Option(help="Allowed share of requests finding no GPU at peak.")] = 0.01,
    mode: Annotated[str | None, typer.Option(help="event | fluid for the check (default: by scale).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the checking simulation.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """GPUs per region from Erlang-B (no-queue pools), then a simulated day on that plan, side by side.

    framefleet capacity --daily-requests 1e9 --peak-to-mean 2 --service-time 4 --target-blocking 0.01 \\
        --regions scenarios/planet-day.toml --json
    """
    from framefleet.serve.retry import RetryPolicy
    from framefleet.serve.service import ServiceTime
    from framefleet.sim import load_regions, plan_capacity
    from framefleet.sim import simulate as run_sim
    from framefleet.sim.capacity import check_plan_inputs
    from framefleet.sim.scenario import Demand, Scenario

    def body() -> None:
        if mode is not None and mode not in MODES:
            raise InputError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
        # every option before any file or simulation: non-finite or absurd values exit 2, naming the option
        check_plan_inputs(daily_requests, peak_to_mean, service_time, target_blocking)
        regs, rtt = load_regions(regions)
        plans = plan_capacity(
            regs,
            daily_requests=daily_requests,
            peak_to_mean=peak_to_mean,
            service_time_s=service_time,
            target_blocking=target_blocking,
        )
        chosen = mode or ("fluid" if daily_requests > AUTO_FLUID_ABOVE else "event")
        # The check: each region alone (local-only, one attempt), so blocking is what Erlang-B planned for.
        sc = Scenario(
            name="capacity-check",
            regions=tuple(replace(r, gpus=p.gpus) for r, p in zip(regs, plans, strict=True)),
            rtt_ms=rtt,
            demand=Demand(daily_requests, peak_to_mean),
            service=ServiceTime(service_time, 0.0, "exponential"),
            policy="local-only",
            client=RetryPolicy(max_attempts=1),
            duration_s=86400.0,
            seed=seed,
            bucket_s=3600.0,
            mode=chosen,
        )
        with sim_progress("simulate the planned day", True) as progress:
            report = run_sim(sc, progress).to_dict()
        per_region = {}
        for p in plans:
            sim = report["per_region"][p.region]
            per_region[p.region] = p.to_dict() | {
                "simulated_success": sim["success_rate"],
                "simulated_peak_hour_success": sim["worst_bucket_success"],
                "simulated_peak_utilization": sim["peak_utilization"],
            }
        payload = {
            "daily_requests": daily_requests,
            "peak_to_mean": peak_to_mean,
            "service_time_s": service_time,
            "target_blocking": target_blocking,
            "gpus": sum(p.gpus for p in plans),
            "check_mode": chosen,
            "simulated_requests": report["requests"],
            "simulated_success": report["success_rate"],
            "simulated_wall_s": report["wall_s"],
            "regions": per_region,
        }

        def render() -> None:
            t = Table(title=f"capacity plan: {payload['gpus']} GPUs ({chosen} check)", title_justify="left")
            for col in ("region", "peak rps", "erlangs", "GPUs", "planned success", "simulated peak hour",
                        "simulated day", "peak util"):  # fmt: skip
                t.add_column(col, justify="left" if col == "region" else "right")
            for name, r in per_region.items():
                t.add_row(name, f"{r['peak_rps']:.1f}", f"{r['erlangs']:.0f}", str(r["gpus"]),
                          f"{r['planned_success']:.4f}", str(r["simulated_peak_hour_success"]),
                          str(r["simulated_success"]), f"{r['peak_utilization']:.2f}")  # fmt: skip
            out.print(t)

        emit(payload, as_json, render)

    run(as_json, body)
