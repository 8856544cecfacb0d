"""Simulator scenarios from TOML. Every mistake is reported with the field that holds it (exit 2).

# scenarios/storm.toml (abridged)
[simulation]
duration_s = 3600            # simulated seconds
start_utc_h = 0              # UTC hour at t = 0 (diurnal curves are in each region's local time)
seed = 1
bucket_s = 60                # resolution of the time series in the report and plots
mode = "event"               # event (discrete events, SimPy) | fluid (aggregate, for 1e9 requests/day)

[[regions]]
name = "us-east"
gpus = 40                    # one GPU = one request at a time, never a queue (a fleet's `workers` is the same)
utc_offset_h = -5
share = 0.3                  # share of the global demand (normalised over regions)

[rtt_ms]                     # every pair, as in the fleet TOML
us-east = { eu-west = 80 }

[demand]
daily_requests = 1e6         # the mean rate is daily_requests / 86400
peak_to_mean = 1.5           # diurnal curve, in [1, 2]; peaks at peak_hour local time
peak_hour = 20
batch_share = 0.0            # fraction of demand submitted in synchronised batches (cron, campaigns)
batch_period_s = 60

[service]                    # as in the fleet TOML; in seconds (or mean_ms/spread_ms, one unit per table)
mean_s = 4.0
spread_s = 1.0
kind = "uniform"

[routing]
policy = "traffic"           # traffic | local-only | global | spill
retry_after_s = 1            # the gateway's Retry-After on a busy answer (0: none)
# plus the traffic manager's knobs: target_utilization, hysteresis, period_s, ring_radii_ms, min_change,
# target_blocking, spill_budget_ms

[client]
preset = "jittered"          # jittered (RetryPolicy()) | naive (RetryPolicy.naive()); fields override
schedule_jitter_s = 0        # any RetryPolicy field: max_attempts, base_s, cap_s, multiplier, jitter, ...

[failures]                   # optional
gpu_mtbf_h = 0               # mean time between failures per GPU (0: none)
repair_s = 600

[[events]]                   # optional: surges and outages
kind = "surge"               # surge (demand × factor) | outage (every GPU of the region down)
region = "ap-south"
start_s = 600
end_s = 1200
factor = 3

One schema with the fleet TOML (serve/config.py): `[[regions]]`, `[rtt_ms]` and `[service]` are read by the
same functions, a region's `tasks` is read and ignored here, the traffic manager's knobs may sit in
`[traffic]` and `retry_after_s` in `[gateway]` as in a fleet file, and the fleet's own tables (`[api_keys]`,
`[models]`, `admin_keys`) are ignored. So a fleet file plus `[demand]` is a scenario.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from framefleet.errors import InputError
from framefleet.serve.balance import POLICIES
from framefleet.serve.config import (
    TOP_KEYS,
    TRAFFIC_KEYS,
    check_keys,
    number,
    parse_regions,
    parse_retry_after,
    parse_rtt,
    parse_service,
    parse_traffic_tables,
)
from framefleet.serve.retry import Jitter, RetryPolicy
from framefleet.serve.service import ServiceTime
from framefleet.serve.traffic import TrafficConfig

_SIMULATION = {"duration_s", "start_utc_h", "seed", "bucket_s", "mode"}
_DEMAND = {"daily_requests", "peak_to_mean", "peak_hour", "batch_share", "batch_period_s"}
_ROUTING_OWN = {"policy", "retry_after_s"}
_RETRY_FIELDS = {f.name for f in fields(RetryPolicy)}
_CLIENT = {"preset"} | _RETRY_FIELDS
_FAILURES = {"gpu_mtbf_h", "repair_s"}
_EVENT = {"kind", "region", "start_s", "end_s", "factor"}
MODES = ("event", "fluid")


@dataclass(frozen=True)
class SimRegion:
    name: str
    gpus: int
    utc_offset_h: float = 0.0
    share: float = 1.0  # normalised in Scenario.shares


@dataclass(frozen=True)
class Demand:
    daily_requests: float
    peak_to_mean: float = 1.0
    peak_hour: float = 20.0
    batch_share: float = 0.0
    batch_period_s: float = 60.0

    @property
    def mean_rps(self) -> float:
        return self.daily_requests / 86400.0


@dataclass(frozen=True)
class Event:
    kind: str  # "surge" | "outage"
    region: str
    start_s: float
    end_s: float
    factor: float = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    regions: tuple[SimRegion, ...]
    rtt_ms: Mapping[str, Mapping[str, float]]
    demand: Demand
    service: ServiceTime = field(default_factory=lambda: ServiceTime(4.0, 1.0, "uniform"))
    policy: str = "traffic"
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    retry_after_s: float = 1.0
    client: RetryPolicy = field(default_factory=RetryPolicy)
    duration_s: float = 3600.0
    start_utc_h: float = 0.0
    seed: int = 0
    bucket_s: float = 60.0
    mode: str = "event"
    gpu_mtbf_h: float = 0.0
    repair_s: float = 600.0
    events: tuple[Event, ...] = ()

    @property
    def region_names(self) -> list[str]:
        return [r.name for r in self.regions]

    @property
    def shares(self) -> dict[str, float]:
        total = sum(r.share for r in self.regions)
        return {r.name: r.share / total for r in self.regions}

    @property
    def gpus(self) -> dict[str, int]:
        return {r.name: r.gpus for r in self.regions}

    def with_gpus(self, gpus: Mapping[str, int]) -> Scenario:
        return replace(self, regions=tuple(replace(r, gpus=int(gpus[r.name])) for r in self.regions))


def _table(where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a table")
    return raw


def _whole(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{where}: expected a whole number ≥ {minimum}, got {value!r}")
    return value


def _regions(raw: Any, source: str, *, need_gpus: bool) -> list[SimRegion]:
    """The shared `[[regions]]` reader (serve/config.py), kept to what the simulator needs."""
    specs = parse_regions(raw, source, min_slots=0, need_slots=need_gpus, slots_key="gpus")
    return [SimRegion(r.name, r.slots or 0, r.utc_offset_h, r.share) for r in specs]


def _client(raw: dict[str, Any], source: str) -> RetryPolicy:
    where = f"{source}: client"
    check_keys(where, raw, _CLIENT)
    preset = raw.get("preset", "jittered")
    if preset not in ("jittered", "naive"):
        raise InputError(f"{where}.preset: use 'jittered' or 'naive', got {preset!r}")
    base = RetryPolicy() if preset == "jittered" else RetryPolicy.naive()
    overrides: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "preset":
            continue
        if k == "jitter":
            try:
                overrides[k] = Jitter(v)
            except ValueError:
                raise InputError(f"{where}.jitter: use one of {[j.value for j in Jitter]}, got {v!r}") from None
        elif k == "budget_ratio" and v == "none":
            overrides[k] = None
        elif k in ("max_attempts", "budget_min_retries"):
            overrides[k] = _whole(f"{where}.{k}", v, 0)
        else:
            overrides[k] = number(f"{where}.{k}", v)
    try:
        return replace(base, **overrides)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def parse_scenario(data: Mapping[str, Any], source: str = "scenario") -> Scenario:
    check_keys(source, data, TOP_KEYS)
    sim = _table(f"{source}: simulation", data.get("simulation", {}))
    check_keys(f"{source}: simulation", sim, _SIMULATION)
    regions = _regions(data.get("regions"), source, need_gpus=True)
    names = [r.name for r in regions]
    rtt = parse_rtt(data.get("rtt_ms", {}), names, source)
    dem = _table(f"{source}: demand", data.get("demand", {}))
    check_keys(f"{source}: demand", dem, _DEMAND)
    if "daily_requests" not in dem:
        raise InputError(f"{source}: demand.daily_requests: missing; how many requests per day in all?")
    demand = Demand(
        daily_requests=number(f"{source}: demand.daily_requests", dem["daily_requests"]),
        peak_to_mean=number(f"{source}: demand.peak_to_mean", dem.get("peak_to_mean", 1.0), minimum=1.0),
        peak_hour=number(f"{source}: demand.peak_hour", dem.get("peak_hour", 20.0)),
        batch_share=number(f"{source}: demand.batch_share", dem.get("batch_share", 0.0)),
        batch_period_s=number(f"{source}: demand.batch_period_s", dem.get("batch_period_s", 60.0), strict=True),
    )
    if demand.peak_to_mean > 2:
        raise InputError(f"{source}: demand.peak_to_mean: must be in [1, 2] (a cosine day), got {demand.peak_to_mean}")
    if demand.batch_share > 1:
        raise InputError(f"{source}: demand.batch_share: must be in [0, 1], got {demand.batch_share}")
    service = parse_service(data.get("service", {}), source, ServiceTime(4.0, 1.0, "uniform"))
    rt = _table(f"{source}: routing", data.get("routing", {}))
    check_keys(f"{source}: routing", rt, _ROUTING_OWN | TRAFFIC_KEYS)
    policy = rt.get("policy", "traffic")
    if policy not in POLICIES:
        raise InputError(f"{source}: routing.policy: use one of {', '.join(POLICIES)}, got {policy!r}")
    traffic = parse_traffic_tables(data, source)
    client = _client(_table(f"{source}: client", data.get("client", {})), source)
    fail = _table(f"{source}: failures", data.get("failures", {}))
    check_keys(f"{source}: failures", fail, _FAILURES)
    mode = sim.get("mode", "event")
    if mode not in MODES:
        raise InputError(f"{source}: simulation.mode: use one of {', '.join(MODES)}, got {mode!r}")
    duration = number(f"{source}: simulation.duration_s", sim.get("duration_s", 3600.0), strict=True)
    events = _events(data.get("events", []), names, duration, source)
    return Scenario(
        name=Path(source).stem,
        regions=tuple(regions),
        rtt_ms=rtt,
        demand=demand,
        service=service,
        policy=policy,
        traffic=traffic,
        retry_after_s=parse_retry_after(data, source),
        client=client,
        duration_s=duration,
        start_utc_h=number(f"{source}: simulation.start_utc_h", sim.get("start_utc_h", 0.0)),
        seed=_whole(f"{source}: simulation.seed", sim.get("seed", 0), 0),
        bucket_s=number(f"{source}: simulation.bucket_s", sim.get("bucket_s", 60.0), strict=True),
        mode=mode,
        gpu_mtbf_h=number(f"{source}: failures.gpu_mtbf_h", fail.get("gpu_mtbf_h", 0.0)),
        repair_s=number(f"{source}: failures.repair_s", fail.get("repair_s", 600.0), strict=True),
        events=events,
    )


def _events(raw: Any, names: list[str], duration: float, source: str) -> tuple[Event, ...]:
    if not isinstance(raw, list):
        raise InputError(f"{source}: events: expected an array of tables ([[events]])")
    out: list[Event] = []
    for i, e in enumerate(raw):
        where = f"{source}: events[{i}]"
        check_keys(where, _table(where, e), _EVENT)
        kind = e.get("kind")
        if kind not in ("surge", "outage"):
            raise InputError(f"{where}.kind: use 'surge' or 'outage', got {kind!r}")
        region = e.get("region")
        if region not in names:
            raise InputError(f"{where}.region: unknown region {region!r}; known: {', '.join(names)}")
        start = number(f"{where}.start_s", e.get("start_s", 0.0))
        end = number(f"{where}.end_s", e.get("end_s", duration))
        if end <= start:
            raise InputError(f"{where}.end_s: must be after start_s ({start:g}), got {end:g}")
        factor = number(f"{where}.factor", e.get("factor", 1.0))
        out.append(Event(kind, region, start, end, factor))
    return tuple(out)


def _read_toml(path: str | Path, what: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such {what} file; see scenarios/ for examples")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid TOML: {e}") from None


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(_read_toml(path, "scenario"), str(path))


def load_regions(path: str | Path) -> tuple[list[SimRegion], dict[str, dict[str, float]]]:
    """Regions and round-trip times for the capacity planner: a scenario or a fleet TOML (GPUs optional)."""
    data = _read_toml(path, "regions")
    regions = _regions(data.get("regions"), str(path), need_gpus=False)
    return regions, parse_rtt(data.get("rtt_ms", {}), [r.name for r in regions], str(path))
