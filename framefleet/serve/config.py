"""Fleet configuration from TOML: regions, their workers, the round-trip times between regions, the
traffic manager's knobs and the API keys. Every mistake is reported with the field that holds it.

    # examples/regions-3.toml
    admin_keys = ["dev-admin-key"] # may read /v1/fleet and /metrics; default shown (before any table)

    [service]                      # the synthetic GPU task's service time (load tests)
    mean_ms = 200
    spread_ms = 50                 # uniform ± spread
    kind = "uniform"               # uniform | exponential | lognormal | constant

    [[regions]]
    name = "us-east"
    workers = 4
    tasks = ["animate", "enhance"]  # what its workers host; default ["synthetic"]

    [[regions]]
    name = "eu-west"
    workers = 3

    [rtt_ms]                       # symmetric; each pair once; a region to itself is 0
    us-east = { eu-west = 80 }

    [traffic]                      # optional; defaults shown
    target_utilization = 0.8
    hysteresis = 0.05
    period_s = 1.0
    ring_radii_ms = [30, 80, 150, 300]   # a last ring of "everything" is always added
    target_blocking = 0.05         # spill policy: a region's target load blocks this share (Erlang-B)
    spill_budget_ms = 200          # spill policy: the most round trip a request full at home may travel

    [api_keys]                     # key = tenant; default {"dev-key" = "local"}
    dev-key = "local"

    [models]                       # optional: what the real tasks run on; defaults shown
    animate = "student"            # "student", "teacher" or a diffusers folder on every worker machine
    device = "auto"                # auto | cpu | cuda

One schema with the simulator's scenarios (sim/scenario.py): both read `[[regions]]`, `[rtt_ms]` and
`[service]` with the functions below (parse_regions, parse_rtt, parse_service), and the traffic manager's
knobs and Retry-After wherever either puts them (parse_traffic_tables, parse_retry_after). A region's
`workers` and `gpus` are synonyms; `utc_offset_h` and `share` are the simulator's; `[service]` is in seconds
(`mean_s`, `spread_s`) or, as above, in milliseconds. So one file can be both a fleet and a scenario: `serve`
ignores the simulator's tables (`[simulation]`, `[demand]`, `[client]`, `[failures]`, `[[events]]`, the
routing `policy`), and `simulate` ignores the fleet's (`[api_keys]`, `[models]`, `admin_keys`, the rest of
`[gateway]`).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framefleet.errors import InputError
from framefleet.serve.service import ServiceTime
from framefleet.serve.traffic import TrafficConfig

# The one schema of fleet files and simulator scenarios: the top-level keys either reads. A file may hold all.
SHARED_TABLES = {"regions", "rtt_ms", "service", "traffic", "routing", "gateway"}
FLEET_ONLY = {"api_keys", "models", "admin_keys"}  # ignored by the simulator
SIMULATOR_ONLY = {"simulation", "demand", "client", "failures", "events"}  # ignored by the fleet
TOP_KEYS = SHARED_TABLES | FLEET_ONLY | SIMULATOR_ONLY
REGION_KEYS = {"name", "workers", "gpus", "tasks", "utc_offset_h", "share"}
SERVICE_KEYS = {"mean_s", "spread_s", "mean_ms", "spread_ms", "kind"}
SERVICE_KINDS = ("uniform", "exponential", "lognormal", "constant")
_MODEL_KEYS = {"animate", "enhance", "device"}
TASK_NAMES = ("synthetic", "animate", "enhance")  # what a worker can host (serve/hosted.py)
TRAFFIC_KEYS = {
    "target_utilization", "hysteresis", "period_s", "ring_radii_ms", "min_change", "target_blocking", "spill_budget_ms",
}  # fmt: skip
_GATEWAY_KEYS = {"max_body_bytes", "tenant_max_inflight", "retry_after_s"}


@dataclass(frozen=True)
class RegionSpec:
    """One `[[regions]]` table as both readers see it; each keeps what it needs (the fleet: Region, the
    simulator: sim.scenario.SimRegion)."""

    name: str
    slots: int | None  # `workers` or `gpus` (synonyms): GPU slots, one request each; None: not given
    tasks: tuple[str, ...] = ("synthetic",)  # what its workers host (the fleet's)
    utc_offset_h: float = 0.0  # its local time, for the diurnal demand curve (the simulator's)
    share: float = 1.0  # its share of the global demand, normalised over regions (the simulator's)


@dataclass(frozen=True)
class Region:
    name: str
    workers: int
    tasks: tuple[str, ...] = ("synthetic",)


@dataclass(frozen=True)
class GatewayConfig:
    max_body_bytes: int = 64 * 1024 * 1024  # uploads above this get 413
    tenant_max_inflight: int = 256  # a tenant over this many requests in flight gets 429 (fair share)
    retry_after_s: int = 1


@dataclass(frozen=True)
class FleetConfig:
    regions: tuple[Region, ...]
    rtt_ms: Mapping[str, Mapping[str, float]]
    service: ServiceTime = field(default_factory=ServiceTime)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    api_keys: Mapping[str, str] = field(default_factory=lambda: {"dev-key": "local"})
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    models: Mapping[str, str] = field(default_factory=dict)  # [models]: animate, enhance, device
    admin_keys: frozenset[str] = frozenset({"dev-admin-key"})

    @property
    def task_names(self) -> list[str]:
        """Every task some region hosts, in TASK_NAMES order."""
        return [t for t in TASK_NAMES if any(t in r.tasks for r in self.regions)]

    def regions_hosting(self, task: str) -> list[str]:
        return [r.name for r in self.regions if task in r.tasks]

    @property
    def region_names(self) -> list[str]:
        return [r.name for r in self.regions]

    @property
    def capacity_rps(self) -> float:
        return sum(r.workers for r in self.regions) / self.service.mean_s

    def region_capacity_rps(self, name: str) -> float:
        return next(r.workers for r in self.regions if r.name == name) / self.service.mean_s


def check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def number(where: str, value: Any, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InputError(f"{where}: expected a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise InputError(f"{where}: must be {'>' if strict else '≥'} {minimum:g}, got {value!r}")
    return float(value)


def _table(where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a table")
    return raw


def parse_fleet(data: Mapping[str, Any], source: str = "fleet config") -> FleetConfig:
    check_keys(source, data, TOP_KEYS)
    regions = [Region(r.name, r.slots or 0, r.tasks) for r in parse_regions(data.get("regions"), source, min_slots=1)]
    names = [r.name for r in regions]
    rtt = parse_rtt(data.get("rtt_ms", {}), names, source)
    service = parse_service(data.get("service", {}), source, ServiceTime())
    traffic = parse_traffic_tables(data, source)
    keys = data.get("api_keys", {"dev-key": "local"})
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise InputError(f'{source}: api_keys: expected a table of key = "tenant" strings')
    gw = _table(f"{source}: gateway", data.get("gateway", {}))
    check_keys(f"{source}: gateway", gw, _GATEWAY_KEYS)
    gateway = GatewayConfig(
        max_body_bytes=int(
            number(f"{source}: gateway.max_body_bytes", gw.get("max_body_bytes", 64 << 20), strict=True)
        ),
        tenant_max_inflight=int(
            number(f"{source}: gateway.tenant_max_inflight", gw.get("tenant_max_inflight", 256), strict=True)
        ),
        retry_after_s=int(parse_retry_after(data, source)),
    )
    models = data.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, str) and v for v in models.values()):
        raise InputError(f'{source}: models: expected a table like {{ animate = "student" }}')
    check_keys(f"{source}: models", models, _MODEL_KEYS)
    admin = data.get("admin_keys", ["dev-admin-key"])
    if not isinstance(admin, list) or not all(isinstance(k, str) and k for k in admin):
        raise InputError(f'{source}: admin_keys: expected an array of strings like ["an-admin-key"]')
    return FleetConfig(tuple(regions), rtt, service, traffic, dict(keys), gateway, dict(models), frozenset(admin))


def parse_regions(
    raw: Any, source: str, *, min_slots: int = 0, need_slots: bool = True, slots_key: str = "workers"
) -> list[RegionSpec]:
    """`[[regions]]`, for the fleet and the simulator alike. `workers` and `gpus` are synonyms (give one);
    each reader sets its own floor (`min_slots`) and whether the count may be left out (`need_slots`; the
    capacity planner's regions need none). `slots_key` is the name a missing count is asked for by."""
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{source}: 'regions' must be a non-empty array of tables ([[regions]])")
    out: list[RegionSpec] = []
    for i, r in enumerate(raw):
        where = f"{source}: regions[{i}]"
        check_keys(where, _table(where, r), REGION_KEYS)
        name = r.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(f"{where}.name: expected a non-empty string")
        if name in [x.name for x in out]:
            raise InputError(f"{where}.name: region {name!r} is defined twice")
        if "workers" in r and "gpus" in r:
            raise InputError(
                f"{where}.gpus: workers = {r['workers']!r} is given too; workers and gpus are synonyms "
                "(GPU slots, one request each): give one of them"
            )
        key = "gpus" if "gpus" in r else "workers" if "workers" in r else None
        if key is None and need_slots:
            raise InputError(f"{where}.{slots_key}: missing; how many GPU slots does {name!r} have? (workers or gpus)")
        slots = None
        if key is not None:
            slots = r[key]
            if isinstance(slots, bool) or not isinstance(slots, int) or slots < min_slots:
                raise InputError(f"{where}.{key}: expected a whole number ≥ {min_slots}, got {slots!r}")
        tasks = parse_tasks(f"{where}.tasks", r.get("tasks", ["synthetic"]))
        offset = number(f"{where}.utc_offset_h", r.get("utc_offset_h", 0.0), minimum=-12.0)
        if offset > 14:
            raise InputError(f"{where}.utc_offset_h: must be ≤ 14, got {offset}")
        share = number(f"{where}.share", r.get("share", 1.0), strict=True)
        out.append(RegionSpec(name, slots, tasks, offset, share))
    return out


def parse_service(raw: Any, source: str, default: ServiceTime) -> ServiceTime:
    """`[service]`, for the fleet and the simulator alike: in seconds (`mean_s`, `spread_s`) or in
    milliseconds (`mean_ms`, `spread_ms`), one unit per table; `default` fills in what is left out."""
    where = f"{source}: service"
    check_keys(where, _table(where, raw), SERVICE_KEYS)
    seconds = sorted(k for k in raw if k.endswith("_s"))
    millis = sorted(k for k in raw if k.endswith("_ms"))
    if seconds and millis:
        raise InputError(
            f"{where}.{millis[0]}: in milliseconds, but {' and '.join(seconds)} in seconds; use one unit per "
            "table: mean_s and spread_s, or the older mean_ms and spread_ms"
        )
    unit, scale = ("ms", 1000.0) if millis else ("s", 1.0)
    mean, spread = f"mean_{unit}", f"spread_{unit}"
    kind = raw.get("kind", default.kind)
    if kind not in SERVICE_KINDS:
        raise InputError(f"{where}.kind: unknown distribution {kind!r}; use one of {', '.join(SERVICE_KINDS)}")
    return ServiceTime(
        mean_s=number(f"{where}.{mean}", raw[mean], strict=True) / scale if mean in raw else default.mean_s,
        spread_s=number(f"{where}.{spread}", raw[spread]) / scale if spread in raw else default.spread_s,
        kind=kind,
    )


def parse_tasks(where: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise InputError(f'{where}: expected a non-empty array of task names like ["animate", "enhance"]')
    unknown = [t for t in raw if t not in TASK_NAMES]
    if unknown:
        raise InputError(f"{where}: unknown task {unknown[0]!r}; a worker can host {', '.join(TASK_NAMES)}")
    return tuple(dict.fromkeys(raw))


def parse_traffic(tr: Any, source: str, *, table: str = "traffic") -> TrafficConfig:
    """The traffic manager's knobs from one table (`table` names it in errors)."""
    where = f"{source}: {table}"
    check_keys(where, _table(where, tr), TRAFFIC_KEYS)
    radii = [number(f"{where}.ring_radii_ms", x) for x in tr.get("ring_radii_ms", [30, 80, 150, 300])]
    try:
        traffic = TrafficConfig(
            target_utilization=number(f"{where}.target_utilization", tr.get("target_utilization", 0.8)),
            hysteresis=number(f"{where}.hysteresis", tr.get("hysteresis", 0.05)),
            period_s=number(f"{where}.period_s", tr.get("period_s", 1.0), strict=True),
            ring_radii_ms=(*sorted(radii), math.inf),
            min_change=number(f"{where}.min_change", tr.get("min_change", 0.02)),
            target_blocking=number(f"{where}.target_blocking", tr.get("target_blocking", 0.05)),
            spill_budget_ms=number(f"{where}.spill_budget_ms", tr.get("spill_budget_ms", 200.0)),
        )
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None
    return traffic


def parse_traffic_tables(data: Mapping[str, Any], source: str) -> TrafficConfig:
    """The traffic manager's knobs, for the fleet and the simulator alike: a fleet file keeps them in
    `[traffic]`, a scenario among `[routing]`'s keys, and both readers read both, so a file that is both
    routes the same way when served and when simulated. A knob given in both tables is an error."""
    tr = _table(f"{source}: traffic", data.get("traffic", {}))
    rt = _table(f"{source}: routing", data.get("routing", {}))
    knobs = {k: v for k, v in rt.items() if k in TRAFFIC_KEYS}
    twice = sorted(set(tr) & set(knobs))
    if twice:
        raise InputError(
            f"{source}: routing.{twice[0]}: also given as traffic.{twice[0]}; give each of the traffic "
            "manager's knobs once, in [traffic] or in [routing]"
        )
    if not knobs:
        return parse_traffic(tr, source)
    if not tr:
        return parse_traffic(knobs, source, table="routing")
    parse_traffic(tr, source)  # each table's mistakes named with its own fields first
    parse_traffic(knobs, source, table="routing")
    return parse_traffic({**tr, **knobs}, source, table="traffic and routing")


def parse_retry_after(data: Mapping[str, Any], source: str) -> float:
    """The gateway's Retry-After on a busy answer, in seconds: `gateway.retry_after_s` (a fleet file's place)
    or `routing.retry_after_s` (a scenario's), not both; 1 if neither."""
    gw = _table(f"{source}: gateway", data.get("gateway", {}))
    rt = _table(f"{source}: routing", data.get("routing", {}))
    if "retry_after_s" in gw and "retry_after_s" in rt:
        raise InputError(
            f"{source}: routing.retry_after_s: also given as gateway.retry_after_s; give it once, in either"
        )
    table = "routing" if "retry_after_s" in rt else "gateway"
    return number(f"{source}: {table}.retry_after_s", {**gw, **rt}.get("retry_after_s", 1.0))


def parse_rtt(raw: Any, names: list[str], source: str) -> dict[str, dict[str, float]]:
    if not isinstance(raw, dict):
        raise InputError(f"{source}: rtt_ms: expected a table")
    rtt: dict[str, dict[str, float]] = {a: {a: 0.0} for a in names}
    for a, row in raw.items():
        if a not in names:
            raise InputError(f"{source}: rtt_ms.{a}: unknown region; known: {', '.join(names)}")
        if not isinstance(row, dict):
            raise InputError(f"{source}: rtt_ms.{a}: expected a table like {{ other = 80 }}")
        for b, ms in row.items():
            if b not in names:
                raise InputError(f"{source}: rtt_ms.{a}.{b}: unknown region; known: {', '.join(names)}")
            value = number(f"{source}: rtt_ms.{a}.{b}", ms)
            if b in rtt[a] and a != b and rtt[a][b] != value:
                raise InputError(f"{source}: rtt_ms.{a}.{b}: given twice with different values")
            rtt[a][b] = rtt[b][a] = value
    for a in names:
        for b in names:
            if b not in rtt[a]:
                raise InputError(f"{source}: rtt_ms: no round-trip time between {a!r} and {b!r}; add rtt_ms.{a}.{b}")
    return rtt


def load_fleet(path: str | Path) -> FleetConfig:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such fleet file; see examples/regions-3.toml for the format")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid TOML: {e}") from None
    return parse_fleet(data, str(p))
