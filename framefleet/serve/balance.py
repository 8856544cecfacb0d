"""Per-request balancing (pure: randomness and time passed in), shared by the gateway and the simulator.

- `choose_target`: a target region for one request, drawn by the routing table's fractions among the
  regions that have a believed-idle worker. The table says where a source's traffic *may* go and in what
  proportion; skipping a region the gateway knows to be full turns the allowed regions into one pool,
  which matters a lot for small no-queue pools (Erlang-B: 2 workers at 1 erlang block 20%, 9 workers at
  4.5 erlangs block ~2%).
- `nearest_idle`: when every allowed region is full at this instant, the nearest ring with an idle worker.
- `pick_region_spill`, `second_region`: the "spill" policy. A request whose region is full *now* goes to the
  nearest ring with an idle worker now, within a round-trip budget, whatever the routing table plans; a busy
  answer gets its second try the same way. This turns the regions into one pool (Erlang-B of all workers)
  while every region is busy, which the table cannot: it plans on averages, and under general overload no
  region has planned headroom, yet idle workers keep appearing one ring away.
- `pick_region_global`: the "global" baseline, one planet-wide pool that ignores where the caller is.
- `power_of_two`: a worker among the believed-idle ones — two at random, the less loaded wins (the
  classic result: exponentially better than one random choice, without a global scan).
- `RateMeter`: requests per second over a sliding window, in fixed buckets (O(1) per event).
- `RoutingState`: all of the above held together with the slot counts, one object in the gateway and in
  the simulator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from framefleet.serve.traffic import RegionReport, RoutingTable, TrafficConfig, TrafficManager, rings

T = TypeVar("T")

POLICIES = ("traffic", "local-only", "global", "spill")  # how the gateway (and the simulator) picks a region
# The regions one request may visit in one pass through the gateway: its first try and its one immediate second
# try (after a busy answer). The client's retries are new passes, each under the same cap.
MAX_REGIONS = 2


def headroom_by(policy: str) -> str:
    """How a policy's traffic manager judges a region's headroom (traffic.HEADROOM): the spill policy by Erlang-B
    blocking, the others by utilization (the traffic policy's, kept as the comparison baseline)."""
    return "blocking" if policy == "spill" else "utilization"


def choose_target(fractions: Mapping[str, float], has_idle: Callable[[str], bool], rng: random.Random) -> str | None:
    """A target region drawn by `fractions`, among regions with an idle worker; None if all are full."""
    open_regions = [(r, f) for r, f in fractions.items() if f > 0 and has_idle(r)]
    if not open_regions:
        return None
    total = sum(f for _, f in open_regions)
    x = rng.random() * total
    for region, f in open_regions:
        x -= f
        if x < 0:
            return region
    return open_regions[-1][0]


def nearest_idle(
    source: str,
    regions: Sequence[str],
    rtt_ms: Mapping[str, Mapping[str, float]],
    ring_radii_ms: Sequence[float],
    has_idle: Callable[[str], bool],
    rng: random.Random,
) -> str | None:
    """Instantaneous spill: a region with an idle worker in the nearest ring around `source` that has one.

    Used when every region the table allows is full *right now*. The table plans for sustained overload;
    a no-queue pool is also momentarily full at moderate load, and the nearest idle worker then beats a
    rejection."""
    for ring in rings(source, regions, rtt_ms, ring_radii_ms):
        idle = [r for r in ring if has_idle(r)]
        if idle:
            return rng.choice(idle)
    return None


def pick_region(
    source: str,
    fractions: Mapping[str, float],
    regions: Sequence[str],
    rtt_ms: Mapping[str, Mapping[str, float]],
    ring_radii_ms: Sequence[float],
    has_idle: Callable[[str], bool],
    has_any_idle: Callable[[str], bool],
    rng: random.Random,
    *,
    spill: bool = True,
    has_headroom: Callable[[str], bool] = lambda _r: True,
) -> tuple[str | None, str]:
    """The region for one request, and which rule chose it. In order:

    1. "local": the source region, when it has an idle worker (no transit, nothing crosses regions);
    2. "table": the routing table's other targets for this source, by their fractions, among those with
       an idle worker;
    3. "ring": the nearest ring with an idle worker (the allowed regions are all full right now);
    4. "optimistic": every idle worker is already claimed by a request in transit; rejecting would fail
       for certain, so go to the nearest region with any idle worker, which may still be free on arrival.

    `has_idle` counts in-transit claims; `has_any_idle` does not. Rules 3 and 4 only go to regions with
    planned headroom (`has_headroom`, from the routing table): when every region is over its target
    (global overload), moving requests between full regions only adds transit time during which the
    claimed worker sits idle. With `spill=False` (the local-only baseline) only rule 1 applies."""
    if has_idle(source):
        return source, "local"
    if not spill:
        return None, ""
    target = choose_target({r: f for r, f in fractions.items() if r != source}, has_idle, rng)
    if target is not None:
        return target, "table"
    target = nearest_idle(source, regions, rtt_ms, ring_radii_ms, lambda r: has_headroom(r) and has_idle(r), rng)
    if target is not None:
        return target, "ring"
    if has_any_idle(source):
        return source, "optimistic"
    target = nearest_idle(source, regions, rtt_ms, ring_radii_ms, lambda r: has_headroom(r) and has_any_idle(r), rng)
    return (target, "optimistic") if target is not None else (None, "")


def pick_region_spill(
    source: str,
    fractions: Mapping[str, float],
    regions: Sequence[str],
    rtt_ms: Mapping[str, Mapping[str, float]],
    ring_radii_ms: Sequence[float],
    has_idle: Callable[[str], bool],
    has_any_idle: Callable[[str], bool],
    rng: random.Random,
    budget_ms: float,
) -> tuple[str | None, str]:
    """The "spill" policy's region for one request, and the rule that chose it, in order:

    1. "local": the source, when it has an idle worker (an idle fleet therefore keeps everything home);
    2. "optimistic": the source's own idle worker that a request in transit has claimed. It is idle now and
       this request is already here; the one in transit gets its second try when it arrives. Taking it before
       spilling means a claim in transit never keeps a worker idle while local requests are turned away (in the
       simulator, on regions-3.toml at 3x overload: more goodput and a smaller cross-region share than the
       other order). Never a remote claimed worker: two requests would travel to the same slot;
    3. "table": the table's other targets within the budget, by their fractions, among those with an idle worker
       (the table's headroom is judged by blocking, see traffic.py);
    4. "ring": the nearest ring with an idle worker within the budget, *not* gated by the table's headroom: under
       general overload no region has planned headroom, and that gate is what held goodput at the isolated
       pools' Erlang-B limit. An idle worker one ring away is capacity lost if nobody takes it now.
    A region farther than `budget_ms` (round trip from the source) is never chosen."""
    if has_idle(source):
        return source, "local"
    if has_any_idle(source):
        return source, "optimistic"

    def near(r: str) -> bool:
        return rtt_ms[source][r] <= budget_ms

    target = choose_target({r: f for r, f in fractions.items() if r != source and near(r)}, has_idle, rng)
    if target is not None:
        return target, "table"
    target = nearest_idle(source, regions, rtt_ms, ring_radii_ms, lambda r: near(r) and has_idle(r), rng)
    return (target, "ring") if target is not None else (None, "")


def second_region(
    source: str,
    tried: Collection[str],
    regions: Sequence[str],
    rtt_ms: Mapping[str, Mapping[str, float]],
    ring_radii_ms: Sequence[float],
    has_idle: Callable[[str], bool],
    rng: random.Random,
    budget_ms: float,
) -> str | None:
    """Where a request goes after every region in `tried` answered busy: home if it was not tried and has an idle
    worker now, else the nearest ring with an idle worker within the budget, never a region already tried.
    (The answer came back to the gateway at the source, so distances count from there.)"""
    if source not in tried and has_idle(source):
        return source
    return nearest_idle(
        source, regions, rtt_ms, ring_radii_ms,
        lambda r: r not in tried and rtt_ms[source][r] <= budget_ms and has_idle(r), rng,
    )  # fmt: skip


def capacity_shares(slots: Mapping[str, float]) -> dict[str, float]:
    """Each region's share of all healthy slots (the "global" policy's fractions)."""
    total = sum(max(0.0, v) for v in slots.values())
    return {r: max(0.0, v) / total for r, v in slots.items()} if total > 0 else {}


def pick_region_global(
    shares: Mapping[str, float],
    has_idle: Callable[[str], bool],
    has_any_idle: Callable[[str], bool],
    rng: random.Random,
) -> tuple[str | None, str]:
    """The "global" baseline: any region with an idle worker, drawn in proportion to its size, wherever the
    caller is (a global load balancer that ignores locality). Few rejections, but most requests cross
    regions and pay the round trip."""
    target = choose_target(shares, has_idle, rng)
    if target is not None:
        return target, "global"
    target = choose_target(shares, has_any_idle, rng)
    return (target, "optimistic") if target is not None else (None, "")


def power_of_two(candidates: Sequence[T], load: Callable[[T], float], rng: random.Random) -> T | None:
    """Pick two candidates at random and return the one with the lower load (ties: the first drawn)."""
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    a, b = rng.sample(list(candidates), 2)
    return b if load(b) < load(a) else a


@dataclass
class RateMeter:
    """Events per second per key over the last `window_s`, counted in `buckets` fixed slices."""

    window_s: float = 5.0
    buckets: int = 10
    _counts: dict[str, list[float]] = field(default_factory=dict, repr=False)
    _epoch: int = field(default=-1, repr=False)

    def _advance(self, now: float) -> int:
        epoch = math.floor(now / (self.window_s / self.buckets))
        if self._epoch < 0:
            self._epoch = epoch
        if epoch > self._epoch:
            for e in range(self._epoch + 1, min(epoch, self._epoch + self.buckets) + 1):
                for counts in self._counts.values():
                    counts[e % self.buckets] = 0.0
            self._epoch = epoch
        return epoch % self.buckets

    def record(self, key: str, now: float, n: float = 1.0) -> None:
        slot = self._advance(now)
        self._counts.setdefault(key, [0.0] * self.buckets)[slot] += n

    def totals(self, now: float) -> dict[str, float]:
        """Events per key within the window."""
        self._advance(now)
        return {k: sum(v) for k, v in self._counts.items()}

    def rates(self, now: float) -> dict[str, float]:
        return {k: n / self.window_s for k, n in self.totals(now).items()}


@dataclass
class RoutingState:
    """The gateway's routing state, one object held by the live gateway and by the simulator's event engine:
    per region the healthy and busy slots and the requests in transit to it, the measured service time
    (EWMA) and demand, the policy switch and the traffic manager whose table is in force. The holder keeps
    the counts true (the gateway from its workers and health checks, the simulator from its events); every
    decision is made here, so the simulator predicts what the gateway does.

    `pick(source, rng, allowed)` chooses a region; `depart`/`arrive` bracket a request's transit; after a
    worker answers, `observe_service`; every period, `update(now)` recomputes the routing table."""

    names: Sequence[str]
    rtt_ms: Mapping[str, Mapping[str, float]]
    traffic: TrafficConfig
    policy: str = "traffic"
    default_service_s: float = 0.2
    manager: TrafficManager = field(init=False)
    demand: RateMeter = field(default_factory=lambda: RateMeter(window_s=5.0))
    healthy: dict[str, int] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)
    incoming: dict[str, int] = field(default_factory=dict)
    service_ewma_s: dict[str, float] = field(default_factory=dict)
    _fractions_table: RoutingTable | None = field(default=None, init=False, repr=False)
    _fractions_cache: dict[str, dict[str, float]] = field(default_factory=dict, init=False, repr=False)
    _shares_key: tuple[int, ...] = field(default=(), init=False, repr=False)
    _shares: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; use one of {', '.join(POLICIES)}")
        self.manager = TrafficManager(self.rtt_ms, self.traffic, headroom_by=headroom_by(self.policy))
        for r in self.names:
            self.healthy.setdefault(r, 0)
            self.busy.setdefault(r, 0)
            self.incoming.setdefault(r, 0)
            self.service_ewma_s.setdefault(r, self.default_service_s)

    @property
    def uses_table(self) -> bool:
        """Whether `pick` reads the routing table (the holder then calls `update` every period)."""
        return self.policy in ("traffic", "spill")

    # -- the gateway's beliefs ----------------------------------------------------------------------
    def has_idle(self, region: str) -> bool:
        """An idle slot not already claimed by a request on its way there. Without the in-transit count,
        every request crossing regions at once would head for the same lone idle slot."""
        return self.healthy[region] - self.busy[region] > self.incoming[region]

    def has_any_idle(self, region: str) -> bool:
        return self.healthy[region] > self.busy[region]

    def has_headroom(self, region: str) -> bool:
        table = self.manager.table
        return table.has_headroom(region) if table is not None else True

    def fractions(self, source: str) -> dict[str, float]:
        if self.policy == "local-only" or self.manager.table is None:
            return {source: 1.0}
        return self.manager.table.fractions(source)

    def _table_fractions(self, source: str) -> dict[str, float]:
        """`fractions(source)`, computed once per routing table (a table never changes once made); for
        `pick` only, which does not mutate what it gets."""
        table = self.manager.table
        if self.policy == "local-only" or table is None:
            return {source: 1.0}
        if table is not self._fractions_table:
            self._fractions_table, self._fractions_cache = table, {}
        cached = self._fractions_cache.get(source)
        if cached is None:
            cached = self._fractions_cache[source] = table.fractions(source)
        return cached

    def shares(self) -> dict[str, float]:
        return capacity_shares({r: float(self.healthy[r]) for r in self.names})

    def _current_shares(self) -> dict[str, float]:
        """`shares()`, recomputed only when a healthy count moved; for `pick` only (it does not mutate)."""
        key = tuple(self.healthy.values())
        if key != self._shares_key:
            self._shares_key, self._shares = key, self.shares()
        return self._shares

    # -- decisions ----------------------------------------------------------------------------------
    def pick(self, source: str, rng: random.Random, allowed: Collection[str] | None = None) -> tuple[str | None, str]:
        """The target region for one request from `source` under the policy, and the rule that chose it.
        `allowed`: the regions that host the task (None: all)."""
        has_idle: Callable[[str], bool] = self.has_idle
        has_any_idle: Callable[[str], bool] = self.has_any_idle
        if allowed is not None:  # (None: every region, no per-request set on the simulator's hot path)
            ok = set(allowed)

            def idle_in(r: str) -> bool:
                return r in ok and self.has_idle(r)

            def any_idle_in(r: str) -> bool:
                return r in ok and self.has_any_idle(r)

            has_idle, has_any_idle = idle_in, any_idle_in

        if self.policy == "global":
            return pick_region_global(self._current_shares(), has_idle, has_any_idle, rng)
        if self.policy == "spill":
            return pick_region_spill(
                source, self._table_fractions(source), self.names, self.rtt_ms, self.traffic.ring_radii_ms,
                has_idle, has_any_idle, rng, self.traffic.spill_budget_ms,
            )  # fmt: skip
        return pick_region(
            source,
            self._table_fractions(source),
            self.names,
            self.rtt_ms,
            self.traffic.ring_radii_ms,
            has_idle,
            has_any_idle,
            rng,
            spill=self.policy == "traffic",
            has_headroom=self.has_headroom,
        )

    def second_try(
        self, source: str, tried: Collection[str], rng: random.Random, allowed: Collection[str] | None = None
    ) -> str | None:
        """The region for a request's second try after the regions in `tried` answered busy (spill policy only;
        None: no second region, the caller hears busy). Never more than MAX_REGIONS regions in all."""
        if self.policy != "spill" or len(tried) >= MAX_REGIONS:
            return None
        ok = set(allowed) if allowed is not None else None

        def idle_in(r: str) -> bool:
            return (ok is None or r in ok) and self.has_idle(r)

        return second_region(
            source, tried, self.names, self.rtt_ms, self.traffic.ring_radii_ms, idle_in, rng,
            self.traffic.spill_budget_ms,
        )  # fmt: skip

    def depart(self, target: str) -> None:
        self.incoming[target] += 1

    def arrive(self, target: str) -> None:
        self.incoming[target] -= 1

    def observe_service(self, region: str, seconds: float) -> None:
        if seconds > 0:
            self.service_ewma_s[region] = 0.9 * self.service_ewma_s[region] + 0.1 * seconds

    def reports(self) -> list[RegionReport]:
        return [
            RegionReport(r, self.healthy[r], self.service_ewma_s[r], self.busy[r] / max(1, self.healthy[r]))
            for r in self.names
        ]

    def update(self, now: float) -> RoutingTable:
        """Recompute the routing table from the capacity reports and the measured demand."""
        return self.manager.update(self.reports(), self.demand.rates(now), now)
