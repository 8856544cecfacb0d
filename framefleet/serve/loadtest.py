"""Open-loop load test: Poisson arrivals per source region, through the real async client.

Open loop means arrivals never wait for completions (k6's constant-arrival-rate). A closed loop slows
its own arrivals as the system slows (coordinated omission) and would hide exactly the retry storms this
test exists to show.

    framefleet loadtest --regions examples/regions-3.toml --rate 9 --duration 20 --skew ap-south=10 --json

`--rate` is the total offered requests/s, split across source regions in proportion to their capacity;
`--skew region=factor` multiplies one region's share. One client (with its own retry budget) per source
region, as a frontend service in that region would have.

`--task animate` sends real work instead of the synthetic sleep: each arrival uploads one of the held-out
photographs (motion.photographs("holdout"), JPEG-encoded once) with a training prompt and a seed of its own
(the same image, parameters and seed would return the stored variant without rendering). The report's
`service_ms` is the distribution of the workers' own service times (the slot's holding time) over the
successes, and `--scenario-out` writes a simulator scenario of the same fleet, rate and client with that
distribution (`scenario_toml`), so the simulator's prediction can be set beside the measurement.

    framefleet loadtest --regions examples/regions-serve.toml --task animate --rate 2 --duration 30 \
        --scenario-out measured.toml --json
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from framefleet.errors import FramefleetError, InputError
from framefleet.serve.client import AsyncFramefleetClient, Result
from framefleet.serve.config import FleetConfig
from framefleet.serve.retry import RetryPolicy

TASKS = ("synthetic", "animate")  # what the load test can send


@dataclass(frozen=True)
class Sample:
    source: str
    t_arrival: float  # seconds since the start of the test
    ok: bool
    attempts: int
    latency_s: float
    served_region: str | None
    reason: str = ""
    t_done: float = 0.0  # seconds since the start, when the last attempt ended
    launch_lag_s: float = 0.0  # how late the open loop launched it (a busy load generator shows here)
    service_s: float | None = None  # the worker's own service time (successes only)


@dataclass
class LoadReport:
    requests: int
    succeeded: int
    success_rate: float
    goodput_rps: float
    capacity_rps: float
    offered_rps: float
    attempts_per_request: float
    latency_ms: dict[str, float | None]
    cross_region_share: float
    duration_s: float
    per_region: dict[str, dict[str, float]] = field(default_factory=dict)
    launch_lag_ms_p99: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    task: str = "synthetic"
    # the workers' service times over the successes: mean, sd, cv, p50, p95, p99 (ms; cv a ratio), n
    service_ms: dict[str, float | None] = field(default_factory=dict)
    offered_rps_by_region: dict[str, float] = field(default_factory=dict)  # the split the arrivals used
    samples: list[Sample] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}


def parse_skew(items: list[str] | None, regions: list[str]) -> dict[str, float]:
    skew: dict[str, float] = {}
    for item in items or []:
        name, _, factor = item.partition("=")
        if name not in regions:
            raise InputError(f"--skew {item!r}: unknown region {name!r}; known: {', '.join(regions)}")
        try:
            value = float(factor)
        except ValueError:
            raise InputError(f"--skew {item!r}: factor must be a number, like {name}=2") from None
        if value < 0 or math.isnan(value):
            raise InputError(f"--skew {item!r}: factor must be ≥ 0")
        skew[name] = value
    return skew


def offered_rates(config: FleetConfig, rate: float, skew: Mapping[str, float]) -> dict[str, float]:
    if rate <= 0 or math.isnan(rate):
        raise InputError(f"--rate must be positive, got {rate}")
    total = config.capacity_rps
    return {r.name: rate * config.region_capacity_rps(r.name) / total * skew.get(r.name, 1.0) for r in config.regions}


def arrivals(rates: Mapping[str, float], duration_s: float, rng: random.Random) -> list[tuple[float, str]]:
    """Poisson arrival times per source region, merged and sorted."""
    out: list[tuple[float, str]] = []
    for region, lam in rates.items():
        t = 0.0
        while lam > 0:
            t += rng.expovariate(lam)
            if t >= duration_s:
                break
            out.append((t, region))
    out.sort()
    return out


def check_task(task: str, config: FleetConfig) -> None:
    if task not in TASKS:
        raise InputError(f"--task {task!r}: use one of {', '.join(TASKS)}")
    if task != "synthetic" and not config.regions_hosting(task):
        raise InputError(f"--task {task}: no region of this fleet hosts {task} (add it to a region's tasks)")


def animate_inputs() -> tuple[list[bytes], list[str]]:
    """The held-out photographs as JPEG bytes (encoded once) and one training prompt per motion ("pan left")."""
    import cv2

    from framefleet.models.animate.motion import photographs, train_prompts

    photos = []
    for _name, rgb in sorted(photographs("holdout").items()):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise FramefleetError(f"could not encode the photograph {_name} as JPEG")
        photos.append(buf.tobytes())
    prompts = [next(text for text, speed in v if speed == 1.0) for v in train_prompts().values()]
    return photos, prompts


def _service_s(res: Result) -> float | None:
    ms = res.body.get("service_ms") if res.ok else None
    return float(ms) / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else None


async def run_load(url: str, config: FleetConfig, *, rate: float, duration_s: float,
                   skew: Mapping[str, float] | None = None, retry: str = "jittered", api_key: str = "dev-key",
                   seed: int = 0, progress: Any = None, task: str = "synthetic") -> LoadReport:  # fmt: skip
    if retry not in ("jittered", "naive"):
        raise InputError(f"--retry must be 'jittered' or 'naive', got {retry!r}")
    check_task(task, config)
    rng = random.Random(seed)
    rates = offered_rates(config, rate, skew or {})
    schedule = arrivals(rates, duration_s, rng)
    # animate: per arrival a photograph, a prompt and a seed of its own. The render seeds start at a fresh random
    # base on every run, so a second run against the same store renders again instead of finding its variants.
    jobs: list[tuple[bytes, str, int]] = []
    if task == "animate":
        photos, prompts = animate_inputs()
        pick = random.Random(f"animate-{seed}")
        base = secrets.randbelow(1 << 30)
        jobs = [(pick.choice(photos), pick.choice(prompts), base + i) for i in range(len(schedule))]
    policy = RetryPolicy() if retry == "jittered" else RetryPolicy.naive()
    http = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0, pool=None),
                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=512))  # fmt: skip
    clients = {r: AsyncFramefleetClient(url, api_key=api_key, region=r, policy=policy,
                                        rng=random.Random(rng.random()), http=http) for r in rates}  # fmt: skip
    samples: list[Sample] = []
    start = time.monotonic()

    async def one(i: int, t_arrival: float, region: str) -> None:
        lag = time.monotonic() - start - t_arrival
        res: Result
        if task == "animate":
            photo, prompt, render_seed = jobs[i]
            res = await clients[region].animate(photo, prompt=prompt, seed=render_seed)
        else:
            res = await clients[region].run("synthetic", {"t": round(t_arrival, 4)})
        served = res.body.get("region") if res.ok else None
        done = time.monotonic() - start
        samples.append(Sample(region, t_arrival, res.ok, res.attempts, res.latency_s, served, res.reason, done, lag,
                              _service_s(res)))  # fmt: skip
        if progress is not None:
            progress()

    tasks: list[asyncio.Task[None]] = []
    for i, (t_arrival, region) in enumerate(schedule):  # open loop: launch on schedule, never wait
        delay = start + t_arrival - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, t_arrival, region)))
    await asyncio.gather(*tasks)
    await http.aclose()
    report = summarize(samples, config, duration_s, sum(rates.values()), task=task)
    report.offered_rps_by_region = {r: round(v, 6) for r, v in rates.items()}
    return report


def service_stats(service_ms: list[float]) -> dict[str, float | None]:
    """Mean, standard deviation, coefficient of variation and percentiles of service times in ms."""
    xs = sorted(service_ms)
    if not xs:
        return {"mean": None, "sd": None, "cv": None, "p50": None, "p95": None, "p99": None, "n": 0}
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return {
        "mean": round(mean, 2), "sd": round(sd, 2), "cv": round(sd / mean, 4) if mean > 0 else None,
        "p50": round(xs[int(0.5 * len(xs))], 2), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 2),
        "p99": round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 2), "n": len(xs),
    }  # fmt: skip


def task_capacity_rps(config: FleetConfig, task: str, mean_service_s: float | None) -> float:
    """Requests/s the slots hosting `task` complete when always busy: slots / mean service time (0: unknown)."""
    if not mean_service_s:
        return 0.0
    return sum(r.workers for r in config.regions if task in r.tasks) / mean_service_s


def summarize(samples: list[Sample], config: FleetConfig, duration_s: float, offered_rps: float,
              task: str = "synthetic") -> LoadReport:  # fmt: skip
    ok = [s for s in samples if s.ok]
    lat = sorted(s.latency_s * 1000 for s in ok)
    service = service_stats([s.service_s * 1000 for s in ok if s.service_s is not None])
    mean_ms = service["mean"]
    # synthetic: the TOML's [service] gives the capacity; a real task's comes from its measured service time
    capacity = config.capacity_rps if task == "synthetic" else task_capacity_rps(config, task, (mean_ms or 0) / 1000)

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    per_region: dict[str, dict[str, float]] = {}
    for r in config.region_names:
        mine = [s for s in samples if s.source == r]
        per_region[r] = {
            "requests": len(mine),
            "success_rate": round(sum(s.ok for s in mine) / len(mine), 4) if mine else 1.0,
            "served_here": sum(1 for s in ok if s.served_region == r),
        }
    return LoadReport(
        requests=len(samples), succeeded=len(ok),
        success_rate=round(len(ok) / len(samples), 4) if samples else 1.0,
        # Successes per second of the time actually taken: requests that finish after the arrival window
        # must not inflate goodput above what the fleet really served.
        goodput_rps=round(len(ok) / max(duration_s, max((s.t_done for s in samples), default=0.0)), 2),
        launch_lag_ms_p99=round(sorted(s.launch_lag_s for s in samples)[int(0.99 * (len(samples) - 1))] * 1000, 1)
        if samples
        else 0.0, capacity_rps=round(capacity, 2),
        offered_rps=round(offered_rps, 2),
        attempts_per_request=round(statistics.fmean(s.attempts for s in samples), 3) if samples else 0.0,
        latency_ms={"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
        cross_region_share=round(sum(s.served_region != s.source for s in ok) / len(ok), 4) if ok else 0.0,
        duration_s=duration_s, per_region=per_region, samples=samples,
        failure_reasons=dict(Counter(s.reason for s in samples if not s.ok)),
        task=task, service_ms=service,
    )  # fmt: skip


def _f(x: float) -> str:
    return repr(float(x))  # a TOML float (1e-09 included)


def scenario_toml(config: FleetConfig, report: LoadReport, *, retry: str, policy: str = "traffic", seed: int = 0,
                  source: str = "") -> str:  # fmt: skip
    """A simulator scenario (sim/scenario.py) of the fleet and load a load test measured, checked by the scenario
    loader: the fleet's regions (GPUs: the workers of the regions hosting the task, none elsewhere), round-trip
    times and traffic knobs, the gateway's Retry-After, flat demand at the offered rate with the load test's
    per-region split, the measured service time as a lognormal of the same mean and standard deviation, the
    same client retry preset, and the same duration."""
    import tomllib

    from framefleet.sim.scenario import parse_scenario

    mean, sd = report.service_ms.get("mean"), report.service_ms.get("sd") or 0.0
    if not mean:
        raise FramefleetError("no request succeeded: there is no measured service time to write a scenario with")
    rates = report.offered_rps_by_region or offered_rates(config, report.offered_rps, {})
    total = sum(rates.values())
    q = json.dumps  # a TOML basic string
    tr = config.traffic
    lines = [
        f"# Written by `framefleet loadtest --task {report.task} --scenario-out`{f' for {source}' if source else ''}:",
        f"# {report.requests} requests at {total:.4g} rps offered for {report.duration_s:g} s measured a service",
        f"# time of {mean:g} ± {sd:g} ms (p50 {report.service_ms.get('p50')}, p99 {report.service_ms.get('p99')})",
        f"# and a success rate of {report.success_rate}. Simulate it: framefleet simulate THIS_FILE --json",
        "[simulation]",
        f"duration_s = {_f(report.duration_s)}",
        f"seed = {int(seed)}",
        f"bucket_s = {_f(min(60.0, report.duration_s))}",
        'mode = "event"',
        "",
    ]
    for r in config.regions:
        # the simulator refuses a share of 0 (a region skewed to nothing): a vanishing one sends nothing either
        share = max(rates.get(r.name, 0.0) / total, 1e-9)
        gpus = r.workers if report.task in r.tasks else 0
        lines += ["[[regions]]", f"name = {q(r.name)}", f"gpus = {gpus}", f"share = {_f(share)}", ""]
    lines.append("[rtt_ms]")
    names = config.region_names
    for i, a in enumerate(names):
        row = ", ".join(f"{q(b)} = {_f(config.rtt_ms[a][b])}" for b in names[i + 1 :])
        if row:
            lines.append(f"{q(a)} = {{ {row} }}")
    radii = ", ".join(_f(x) for x in tr.ring_radii_ms if math.isfinite(x))
    lines += [
        "",
        "[demand]  # flat: the load test's Poisson arrivals at a constant rate",
        f"daily_requests = {_f(total * 86400.0)}",
        "peak_to_mean = 1.0",
        "",
        "[service]  # measured: the workers' service times over the successes",
        f"mean_s = {_f(mean / 1000)}",
        f"spread_s = {_f(sd / 1000)}",
        'kind = "lognormal"',
        "",
        "[routing]",
        f"policy = {q(policy)}",
        f"retry_after_s = {_f(config.gateway.retry_after_s)}",
        f"target_utilization = {_f(tr.target_utilization)}",
        f"hysteresis = {_f(tr.hysteresis)}",
        f"period_s = {_f(tr.period_s)}",
        f"ring_radii_ms = [{radii}]",
        f"min_change = {_f(tr.min_change)}",
        f"target_blocking = {_f(tr.target_blocking)}",
        f"spill_budget_ms = {_f(tr.spill_budget_ms)}",
        "",
        "[client]",
        f"preset = {q(retry)}",
        "",
    ]
    text = "\n".join(lines)
    parse_scenario(tomllib.loads(text), "loadtest scenario")  # never write what the simulator would refuse
    return text


def plot_report(report: LoadReport, config: FleetConfig, out: str | Path, title: str = "") -> None:
    """Success rate and per-region served load over time, one-second bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = max(1, math.ceil(report.duration_s))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    xs = list(range(bins))
    total = [0] * bins
    good = [0] * bins
    served = {r: [0] * bins for r in config.region_names}
    for s in report.samples:
        b = min(bins - 1, int(s.t_arrival))
        total[b] += 1
        good[b] += s.ok
        if s.served_region in served:
            served[s.served_region][b] += 1
    a1.plot(xs, [g / t if t else 1.0 for g, t in zip(good, total, strict=True)], color="tab:green")
    a1.set_ylabel("success rate")
    a1.set_ylim(0, 1.05)
    a1.set_title(title or f"offered {report.offered_rps} rps, capacity {report.capacity_rps} rps")
    for r, ys in served.items():
        a2.plot(xs, ys, label=f"served in {r} (cap {config.region_capacity_rps(r):.0f}/s)")
    a2.set_ylabel("requests served / s")
    a2.set_xlabel("time (s, by arrival)")
    a2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(str(out), dpi=110)
    plt.close(fig)
