"""Open-loop load test: Poisson arrivals per source region, through the real async client.

Open loop means arrivals never wait for completions (k6's constant-arrival-rate). A closed loop slows
its own arrivals as the system slows (coordinated omission) and would hide exactly the retry storms this
test exists to show.

    framefleet loadtest --regions examples/regions-3.toml --rate 9 --duration 20 --skew ap-south=10 --json

`--rate` is the total offered requests/s, split across source regions in proportion to their capacity;
`--skew region=factor` multiplies one region's share. One client (with its own retry budget) per source
region, as a frontend service in that region would have.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from framefleet.errors import InputError
from framefleet.serve.client import AsyncFramefleetClient, Result
from framefleet.serve.config import FleetConfig
from framefleet.serve.retry import RetryPolicy


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


async def run_load(url: str, config: FleetConfig, *, rate: float, duration_s: float,
                   skew: Mapping[str, float] | None = None, retry: str = "jittered", api_key: str = "dev-key",
                   seed: int = 0, progress: Any = None) -> LoadReport:  # fmt: skip
    if retry not in ("jittered", "naive"):
        raise InputError(f"--retry must be 'jittered' or 'naive', got {retry!r}")
    rng = random.Random(seed)
    rates = offered_rates(config, rate, skew or {})
    schedule = arrivals(rates, duration_s, rng)
    policy = RetryPolicy() if retry == "jittered" else RetryPolicy.naive()
    http = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0, pool=None),
                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=512))  # fmt: skip
    clients = {r: AsyncFramefleetClient(url, api_key=api_key, region=r, policy=policy,
                                        rng=random.Random(rng.random()), http=http) for r in rates}  # fmt: skip
    samples: list[Sample] = []
    start = time.monotonic()

    async def one(t_arrival: float, region: str) -> None:
        lag = time.monotonic() - start - t_arrival
        res: Result = await clients[region].run("synthetic", {"t": round(t_arrival, 4)})
        served = res.body.get("region") if res.ok else None
        done = time.monotonic() - start
        samples.append(Sample(region, t_arrival, res.ok, res.attempts, res.latency_s, served, res.reason, done, lag))
        if progress is not None:
            progress()

    tasks: list[asyncio.Task[None]] = []
    for t_arrival, region in schedule:  # open loop: launch on schedule, never wait for completions
        delay = start + t_arrival - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(t_arrival, region)))
    await asyncio.gather(*tasks)
    await http.aclose()
    return summarize(samples, config, duration_s, sum(rates.values()))


def summarize(samples: list[Sample], config: FleetConfig, duration_s: float, offered_rps: float) -> LoadReport:
    ok = [s for s in samples if s.ok]
    lat = sorted(s.latency_s * 1000 for s in ok)

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
        else 0.0, capacity_rps=round(config.capacity_rps, 2),
        offered_rps=round(offered_rps, 2),
        attempts_per_request=round(statistics.fmean(s.attempts for s in samples), 3) if samples else 0.0,
        latency_ms={"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
        cross_region_share=round(sum(s.served_region != s.source for s in ok) / len(ok), 4) if ok else 0.0,
        duration_s=duration_s, per_region=per_region, samples=samples,
        failure_reasons=dict(Counter(s.reason for s in samples if not s.ok)),
    )  # fmt: skip


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
