"""Fleet configuration from TOML: regions, their workers, the round-trip times between regions, the
traffic manager's knobs and the API keys. Every mistake is reported with the field that holds it.

    # examples/regions-3.toml
    [service]                      # the synthetic GPU task's service time (load tests)
    mean_ms = 200
    spread_ms = 50                 # uniform ± spread
    kind = "uniform"               # uniform | exponential | lognormal | constant

    [[regions]]
    name = "us-east"
    workers = 4

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

    [api_keys]                     # key = tenant; default {"dev-key" = "local"}
    dev-key = "local"
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framefleet.errors import InputError
from framefleet.serve.traffic import TrafficConfig
from framefleet.serve.worker import ServiceTime

_TOP_KEYS = {"service", "regions", "rtt_ms", "traffic", "api_keys", "gateway"}
_REGION_KEYS = {"name", "workers"}
_SERVICE_KEYS = {"mean_ms", "spread_ms", "kind"}
_TRAFFIC_KEYS = {"target_utilization", "hysteresis", "period_s", "ring_radii_ms", "min_change"}
_GATEWAY_KEYS = {"max_body_bytes", "tenant_max_inflight", "retry_after_s"}


@dataclass(frozen=True)
class Region:
    name: str
    workers: int


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


def parse_fleet(data: Mapping[str, Any], source: str = "fleet config") -> FleetConfig:
    check_keys(source, data, _TOP_KEYS)
    raw_regions = data.get("regions")
    if not isinstance(raw_regions, list) or not raw_regions:
        raise InputError(f"{source}: 'regions' must be a non-empty array of tables ([[regions]])")
    regions: list[Region] = []
    for i, r in enumerate(raw_regions):
        where = f"{source}: regions[{i}]"
        if not isinstance(r, dict):
            raise InputError(f"{where}: expected a table")
        check_keys(where, r, _REGION_KEYS)
        name = r.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(f"{where}.name: expected a non-empty string")
        if name in [x.name for x in regions]:
            raise InputError(f"{where}.name: region {name!r} is defined twice")
        workers = r.get("workers")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"{where}.workers: expected a whole number ≥ 1, got {workers!r}")
        regions.append(Region(name, workers))
    names = [r.name for r in regions]
    rtt = parse_rtt(data.get("rtt_ms", {}), names, source)
    svc = data.get("service", {})
    check_keys(f"{source}: service", svc, _SERVICE_KEYS)
    service = ServiceTime(
        mean_s=number(f"{source}: service.mean_ms", svc.get("mean_ms", 200), strict=True) / 1000,
        spread_s=number(f"{source}: service.spread_ms", svc.get("spread_ms", 50)) / 1000,
        kind=str(svc.get("kind", "uniform")),
    )
    if service.kind not in {"uniform", "exponential", "lognormal", "constant"}:
        raise InputError(f"{source}: service.kind: unknown distribution {service.kind!r}")
    traffic = parse_traffic(data.get("traffic", {}), source)
    keys = data.get("api_keys", {"dev-key": "local"})
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise InputError(f'{source}: api_keys: expected a table of key = "tenant" strings')
    gw = data.get("gateway", {})
    check_keys(f"{source}: gateway", gw, _GATEWAY_KEYS)
    gateway = GatewayConfig(
        max_body_bytes=int(
            number(f"{source}: gateway.max_body_bytes", gw.get("max_body_bytes", 64 << 20), strict=True)
        ),
        tenant_max_inflight=int(
            number(f"{source}: gateway.tenant_max_inflight", gw.get("tenant_max_inflight", 256), strict=True)
        ),
        retry_after_s=int(number(f"{source}: gateway.retry_after_s", gw.get("retry_after_s", 1))),
    )
    return FleetConfig(tuple(regions), rtt, service, traffic, dict(keys), gateway)


def parse_traffic(tr: Any, source: str) -> TrafficConfig:
    """The traffic manager's knobs (shared by fleet files and simulator scenarios)."""
    if not isinstance(tr, dict):
        raise InputError(f"{source}: traffic: expected a table")
    check_keys(f"{source}: traffic", tr, _TRAFFIC_KEYS)
    radii = [number(f"{source}: traffic.ring_radii_ms", x) for x in tr.get("ring_radii_ms", [30, 80, 150, 300])]
    try:
        traffic = TrafficConfig(
            target_utilization=number(f"{source}: traffic.target_utilization", tr.get("target_utilization", 0.8)),
            hysteresis=number(f"{source}: traffic.hysteresis", tr.get("hysteresis", 0.05)),
            period_s=number(f"{source}: traffic.period_s", tr.get("period_s", 1.0), strict=True),
            ring_radii_ms=(*sorted(radii), math.inf),
            min_change=number(f"{source}: traffic.min_change", tr.get("min_change", 0.02)),
        )
    except ValueError as e:
        raise InputError(f"{source}: traffic: {e}") from None
    return traffic


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
