"""Traffic manager policy (pure: no I/O, time passed in): per-region capacity reports and per-source
demand → a routing table `source region → [(target region, fraction)]`.

Rules, in order:
1. Traffic stays in its source region while that region is below its target utilization.
2. Only the *excess* of an overloaded region moves, to regions with headroom, nearest ring first:
   ring k holds the regions whose distance from the source is within `ring_radii_ms[k]`. Spill-over is
   placed ring by ring for all sources together, so a region's headroom goes first to the sources
   nearest to it.
3. Demand no region has room for stays in its source region (whose workers then reject at once, and
   the clients back off). It is never pushed to a region that is already full.
4. The table is recomputed every `period_s` and locked in between. A region that spilled last time
   keeps spilling until its demand falls `hysteresis` below the target, so the table does not flap
   around the threshold. Tables carry a version that bumps only when they change.

Capacity counts in requests per second: slots / mean service time. Health-based spill (Envoy) does not
move load off *busy* healthy hosts; explicit capacity reports do.

A region's target load (what it may take before it spills, and what others may spill into it) is judged in
one of two ways, chosen by the manager's `headroom_by`:
- "utilization" (the `traffic` policy): `target_utilization` × capacity;
- "blocking" (the `spill` policy): the most offered load whose Erlang-B blocking stays ≤ `target_blocking`
  (serve/erlang.py). A pool of 2 one-request workers offered half its capacity blocks 20% of its requests, one
  of 200 at 5% blocking runs 94% busy: one utilization threshold is too loose for small pools, too tight for big.
Hysteresis is the same in both: a spilling region keeps spilling until its demand is `hysteresis` × its
capacity below its target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from framefleet.serve.erlang import erlangs_at

_EPS = 1e-9
HEADROOM = ("utilization", "blocking")  # how the manager judges a region's target load


@dataclass(frozen=True)
class RegionReport:
    region: str
    slots: int  # healthy workers (one request each)
    service_time_s: float  # mean, measured
    utilization: float = 0.0  # busy fraction now (informational; planning uses demand)

    @property
    def capacity_rps(self) -> float:
        return self.slots / self.service_time_s if self.service_time_s > 0 else 0.0


@dataclass(frozen=True)
class RoutingTable:
    version: int
    computed_at: float
    routes: Mapping[str, tuple[tuple[str, float], ...]]  # source -> ((target, fraction), ...), local first
    planned_load_rps: Mapping[str, float] = field(default_factory=dict)  # target -> rps it will receive
    spilling: frozenset[str] = frozenset()
    headroom_rps: Mapping[str, float] = field(default_factory=dict)  # target load − planned load, ≥ 0

    def has_headroom(self, region: str) -> bool:
        return self.headroom_rps.get(region, 0.0) > _EPS

    def fractions(self, source: str) -> dict[str, float]:
        return dict(self.routes.get(source, ((source, 1.0),)))


@dataclass(frozen=True)
class TrafficConfig:
    target_utilization: float = 0.8
    hysteresis: float = 0.05  # a spilling region stops spilling below target - hysteresis
    ring_radii_ms: tuple[float, ...] = (30.0, 80.0, 150.0, 300.0, math.inf)
    period_s: float = 1.0
    min_change: float = 0.02  # a new table replaces the old only if some fraction moves by more
    # The `spill` policy: a region's target is the load at which it blocks this share (Erlang-B), and a request
    # that finds its region full may go to a region at most this round trip away from its source.
    target_blocking: float = 0.05
    spill_budget_ms: float = 200.0

    def __post_init__(self) -> None:
        if not 0 < self.target_utilization <= 1:
            raise ValueError(f"target_utilization must be in (0, 1], got {self.target_utilization}")
        if not 0 < self.target_blocking < 1:
            raise ValueError(f"target_blocking must be in (0, 1), got {self.target_blocking}")
        if not self.spill_budget_ms >= 0:
            raise ValueError(f"spill_budget_ms must be ≥ 0, got {self.spill_budget_ms}")
        if not 0 <= self.hysteresis < self.target_utilization:
            raise ValueError("hysteresis must be ≥ 0 and below the target utilization")
        if list(self.ring_radii_ms) != sorted(self.ring_radii_ms) or not self.ring_radii_ms:
            raise ValueError("ring_radii_ms must be ascending and non-empty")


def rings(
    source: str, regions: Sequence[str], distance_ms: Mapping[str, Mapping[str, float]], radii: Sequence[float]
) -> list[list[str]]:
    """Other regions grouped by ring around `source`, nearest ring first (ties keep input order)."""
    out: list[list[str]] = [[] for _ in radii]
    for r in regions:
        if r == source:
            continue
        d = distance_ms[source][r]
        k = next((i for i, radius in enumerate(radii) if d <= radius), None)
        if k is not None:
            out[k].append(r)
    return out


def target_load_rps(report: RegionReport, config: TrafficConfig, headroom_by: str = "utilization") -> float:
    """The requests/s a region may take before it spills (and up to which others may spill into it)."""
    if headroom_by == "blocking":
        return erlangs_at(report.slots, config.target_blocking) / report.service_time_s if report.capacity_rps else 0.0
    return config.target_utilization * report.capacity_rps


def plan_routes(
    reports: Sequence[RegionReport],
    demand_rps: Mapping[str, float],
    distance_ms: Mapping[str, Mapping[str, float]],
    config: TrafficConfig = TrafficConfig(),
    spilling: frozenset[str] = frozenset(),
    headroom_by: str = "utilization",
) -> tuple[dict[str, dict[str, float]], dict[str, float], frozenset[str]]:
    """The routing computation: returns (flows source→target in rps, planned load per target, spilling).

    `spilling` is the set of sources that spilled in the previous table (for hysteresis); `headroom_by` says how
    a region's target load is judged (HEADROOM)."""
    if headroom_by not in HEADROOM:
        raise ValueError(f"unknown headroom_by {headroom_by!r}; use one of {', '.join(HEADROOM)}")
    regions = [r.region for r in reports]
    target = {r.region: target_load_rps(r, config, headroom_by) for r in reports}
    capacity = {r.region: r.capacity_rps for r in reports}
    unknown = sorted(set(demand_rps) - set(regions))
    if unknown:
        raise ValueError(f"demand from unknown regions {unknown}; known: {regions}")
    for s in regions:
        missing = [t for t in regions if t not in distance_ms.get(s, {})]
        if missing:
            raise ValueError(f"distance matrix has no entry {s} → {missing[0]}")
    flows: dict[str, dict[str, float]] = {s: {} for s in regions}
    load = dict.fromkeys(regions, 0.0)
    excess: dict[str, float] = {}
    for s in regions:
        d = max(0.0, float(demand_rps.get(s, 0.0)))
        keep_below = target[s]
        if s in spilling:  # hysteresis: keep spilling until clearly below the target
            keep_below = max(0.0, target[s] - config.hysteresis * capacity[s])
        local = d if d <= target[s] and s not in spilling else min(d, keep_below)
        flows[s][s] = local
        load[s] += local
        excess[s] = d - local
    headroom = {t: max(0.0, target[t] - load[t]) for t in regions}
    ring_of = {s: rings(s, regions, distance_ms, config.ring_radii_ms) for s in regions}
    for k in range(len(config.ring_radii_ms)):
        # Water-filling within ring k: each source asks its ring's regions in proportion to their headroom;
        # a region asked for more than it has grants pro rata. Each round fills a region or places all
        # excess, so it ends within (regions + 1) rounds.
        for _ in range(len(regions) + 1):
            asks: dict[str, dict[str, float]] = {}
            for s in regions:
                open_targets = [t for t in ring_of[s][k] if headroom[t] > _EPS]
                room = sum(headroom[t] for t in open_targets)
                if excess[s] <= _EPS or room <= _EPS:
                    continue
                for t in open_targets:
                    asks.setdefault(t, {})[s] = excess[s] * headroom[t] / room
            if not asks:
                break
            for t, by_source in asks.items():
                asked = sum(by_source.values())
                scale = min(1.0, headroom[t] / asked) if asked > 0 else 0.0
                for s, amount in by_source.items():
                    granted = amount * scale
                    flows[s][t] = flows[s].get(t, 0.0) + granted
                    excess[s] -= granted
                    load[t] += granted
                headroom[t] = max(0.0, headroom[t] - asked * scale)
    for s in regions:  # what no region had room for stays home
        if excess[s] > _EPS:
            flows[s][s] += excess[s]
            load[s] += excess[s]
    now_spilling = frozenset(s for s in regions if any(t != s and v > _EPS for t, v in flows[s].items()))
    return flows, load, now_spilling


def _as_routes(flows: Mapping[str, Mapping[str, float]]) -> dict[str, tuple[tuple[str, float], ...]]:
    routes: dict[str, tuple[tuple[str, float], ...]] = {}
    for s, by_target in flows.items():
        total = sum(by_target.values())
        if total <= _EPS:
            routes[s] = ((s, 1.0),)
            continue
        pairs = [(t, v / total) for t, v in by_target.items() if v > _EPS]
        pairs.sort(key=lambda p: (p[0] != s, -p[1]))
        routes[s] = tuple(pairs)
    return routes


def _moved(old: RoutingTable, new_routes: Mapping[str, tuple[tuple[str, float], ...]]) -> float:
    worst = 0.0
    for s in set(old.routes) | set(new_routes):
        a, b = old.fractions(s), dict(new_routes.get(s, ((s, 1.0),)))
        worst = max(worst, max(abs(a.get(t, 0.0) - b.get(t, 0.0)) for t in set(a) | set(b)))
    return worst


@dataclass
class TrafficManager:
    """Goal vs actual: `table` is the routing the fleet follows now (actual); `update` computes what the
    reports say it should be (goal) and adopts it on the period, if it differs enough."""

    distance_ms: Mapping[str, Mapping[str, float]]
    config: TrafficConfig = field(default_factory=TrafficConfig)
    table: RoutingTable | None = None
    headroom_by: str = "utilization"  # HEADROOM: by utilization (the `traffic` policy) or blocking (`spill`)

    def update(self, reports: Sequence[RegionReport], demand_rps: Mapping[str, float], now: float) -> RoutingTable:
        if self.table is not None and now - self.table.computed_at < self.config.period_s:
            return self.table  # locked in until the next period
        spilling = self.table.spilling if self.table is not None else frozenset()
        flows, load, now_spilling = plan_routes(
            reports, demand_rps, self.distance_ms, self.config, spilling, self.headroom_by
        )
        routes = _as_routes(flows)
        target = {r.region: target_load_rps(r, self.config, self.headroom_by) for r in reports}
        headroom = {r: max(0.0, target[r] - load.get(r, 0.0)) for r in target}
        if self.table is not None and _moved(self.table, routes) <= self.config.min_change:
            # Not worth a new version; keep the old fractions but restart the period.
            self.table = RoutingTable(self.table.version, now, self.table.routes, load, now_spilling, headroom)
            return self.table
        version = self.table.version + 1 if self.table is not None else 1
        self.table = RoutingTable(version, now, routes, load, now_spilling, headroom)
        return self.table
