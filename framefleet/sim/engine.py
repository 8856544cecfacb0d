"""Discrete-event simulation (SimPy) of a planet-scale no-queue fleet, driving the real policy code.

What is simulated, and which real function decides it:
- arrivals: Poisson per source region on the diurnal curve (sim/demand.py), plus synchronised batches;
- the client: `retry.decide` / `schedule_delay` / `RetryBudget` (one budget per source region's client
  population, as in the load test), honouring the gateway's Retry-After;
- the gateway: one `balance.RoutingState`, the very object serve/gateway.py holds: `pick` (believed-idle
  counts that include requests in transit), `depart`/`arrive` around the round-trip time paid each way,
  `observe_service`, its demand meter. A request whose region filled up while it was in transit is busy on
  arrival (`busy_on_arrival`), as in the gateway, which finds no idle worker there and answers 503 without a
  try; under the spill policy the answer comes back to the gateway, which gives the request its second try
  in the region `RoutingState.second_try` names (`second_tries`), as the gateway does. The gateway's
  in-region second try (a worker it believed idle answers busy) needs a belief that is wrong about a worker,
  which one gateway with exact in-flight counts, here and live, never has; it would with several gateways
  sharing workers;
- the traffic manager: `RoutingState.update` on its real period from the state's reports (healthy slots,
  measured service time EWMA) and measured demand;
- GPUs: one request each, never a queue; failures (MTBF, repair) and region outages kill what they run.

    from framefleet.sim import load_scenario, simulate
    report = simulate(load_scenario("scenarios/storm.toml"))
"""

from __future__ import annotations

import random
import time
from array import array
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import simpy

from framefleet.serve.balance import RoutingState
from framefleet.serve.retry import Outcome, RetryBudget, decide, schedule_delay
from framefleet.sim.demand import rate_rps, step_edges
from framefleet.sim.report import Series, SimReport
from framefleet.sim.scenario import Scenario

Progress = Callable[[float, float], None]  # (simulated seconds done, total)


class _Req:
    __slots__ = (
        "attempts", "batch", "bucket", "killed", "one_way", "prev_delay", "slot", "src", "t0", "target", "tried",
    )  # fmt: skip

    def __init__(self, src: int, t0: float, bucket: int, batch: bool) -> None:
        self.src = src
        self.t0 = t0
        self.bucket = bucket
        self.batch = batch
        self.attempts = 0
        self.prev_delay = 0.0
        self.target = -1
        self.one_way = 0.0
        self.slot = -1
        self.killed = False
        self.tried: tuple[str, ...] = ()  # the regions this attempt has visited (the spill policy's second try)


class EventSimulation:
    def __init__(self, scenario: Scenario, progress: Progress | None = None) -> None:
        self.sc = sc = scenario
        self.env = simpy.Environment()
        self.rng = random.Random(sc.seed)
        self.np_rng = np.random.default_rng(sc.seed)
        self.progress = progress
        self.names = sc.region_names
        self.idx = {n: i for i, n in enumerate(self.names)}
        n = len(self.names)
        self.gpus = [r.gpus for r in sc.regions]
        self.down = [0] * n
        self.outage = [False] * n
        # The gateway's routing state; its healthy/busy/incoming counts (by region name) are the only ones.
        self.routing = RoutingState(
            self.names,
            sc.rtt_ms,
            sc.traffic,
            sc.policy,
            sc.service.mean_s,
            healthy=dict(zip(self.names, self.gpus, strict=True)),
        )
        self.inflight: list[list[_Req]] = [[] for _ in range(n)]
        self.one_way = [[sc.rtt_ms[a][b] / 2000.0 for b in self.names] for a in self.names]
        interactive = replace(sc.client, schedule_jitter_s=0.0)
        self.policy = {False: interactive, True: sc.client}  # batch work gets the scheduling jitter
        self.budgets = [RetryBudget.for_policy(sc.client) for _ in range(n)]
        self.series = Series.empty(sc, self.names)
        self.latencies = array("d")
        self.attempts_total = 0
        self.busy_on_arrival = 0
        self.second_tries = 0
        self.reasons: dict[str, int] = {}

    # --- snapshots of the routing state's counts, by region index (for inspection) ------------------
    @property
    def healthy(self) -> list[int]:
        return [self.routing.healthy[n] for n in self.names]

    @property
    def busy(self) -> list[int]:
        return [self.routing.busy[n] for n in self.names]

    @property
    def incoming(self) -> list[int]:
        return [self.routing.incoming[n] for n in self.names]

    # --- a request's life ---------------------------------------------------------------------------
    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _e: fn())

    def _bucket(self, t: float) -> int:
        return min(int(t / self.sc.bucket_s), self.series.n - 1)

    def arrive(self, src: int, batch: bool) -> None:
        now = self.env.now
        req = _Req(src, now, self._bucket(now), batch)
        self.series.requests[req.bucket, src] += 1
        delay = schedule_delay(self.policy[batch], self.rng)
        if delay > 0:
            self._later(delay, lambda: self.attempt(req))
        else:
            self.attempt(req)

    def attempt(self, req: _Req) -> None:
        now = self.env.now
        budget = self.budgets[req.src]
        if req.attempts == 0:
            req.t0 = now  # latency counts from the first attempt (scheduling jitter is chosen delay)
            if budget is not None:
                budget.record_request(now)
        req.attempts += 1
        self.attempts_total += 1
        self.series.attempts[req.bucket, req.src] += 1
        routing, source = self.routing, self.names[req.src]
        routing.demand.record(source, now)
        target, _ = routing.pick(source, self.rng)
        if target is None:
            self.answer(req, Outcome.BUSY, 0.0, self.sc.retry_after_s)
            return
        req.tried = ()
        self.go(req, target)

    def go(self, req: _Req, target: str) -> None:
        """Send the request to `target`: transit there (the slot claimed meanwhile), then `reach`."""
        routing = self.routing
        req.tried = (*req.tried, target)
        t = self.idx[target]
        req.target = t
        req.one_way = self.one_way[req.src][t]
        if req.one_way > 0:
            routing.depart(target)
            self._later(req.one_way, lambda: self.reach(req, t))
        else:
            self.reach(req, t)

    def reach(self, req: _Req, t: int) -> None:
        routing, name = self.routing, self.names[t]
        if req.one_way > 0:
            routing.arrive(name)
        if routing.healthy[name] - routing.busy[name] <= 0:
            # The belief the request was routed on is stale by now (or the region died): the gateway finds
            # no idle worker in the region and answers busy.
            self.busy_on_arrival += 1
            if routing.policy == "spill" and req.one_way > 0:
                self._later(req.one_way, lambda: self.bounced(req))  # the answer travels back first
            elif routing.policy == "spill":
                self.bounced(req)
            else:
                self.answer(req, Outcome.BUSY, req.one_way, self.sc.retry_after_s)
            return
        routing.busy[name] += 1
        req.killed = False
        req.slot = len(self.inflight[t])
        self.inflight[t].append(req)
        service = self.sc.service.sample(self.rng)
        attempt = req.attempts  # a completion from an earlier, killed attempt must not end this one
        self._later(service, lambda: self.complete(req, t, service, attempt))

    def bounced(self, req: _Req) -> None:
        """A busy answer is back at the gateway: a second region if the routing state names one, else busy."""
        target = self.routing.second_try(self.names[req.src], req.tried, self.rng)
        if target is None:
            self.answer(req, Outcome.BUSY, 0.0, self.sc.retry_after_s)
            return
        self.second_tries += 1
        self.go(req, target)

    def _release(self, req: _Req, t: int) -> None:
        slots = self.inflight[t]
        last = slots.pop()
        if last is not req:
            slots[req.slot] = last
            last.slot = req.slot
        self.routing.busy[self.names[t]] -= 1

    def complete(self, req: _Req, t: int, service: float, attempt: int) -> None:
        if req.killed or req.attempts != attempt:
            return
        self._release(req, t)
        self.routing.observe_service(self.names[t], service)
        now = self.env.now
        self.latencies.append(now + req.one_way - req.t0)
        s = self.series
        s.succeeded[req.bucket, req.src] += 1
        s.flows[req.bucket, req.src, t] += 1

    def kill(self, t: int) -> None:
        """A GPU of region t dies with its request: the caller gets a retryable error."""
        slots = self.inflight[t]
        req = slots[self.rng.randrange(len(slots))]
        self._release(req, t)
        req.killed = True
        self.answer(req, Outcome.RETRYABLE, req.one_way, 0.0)

    def answer(self, req: _Req, outcome: Outcome, back_s: float, retry_after: float) -> None:
        """The client hears `outcome` after `back_s` and decides with the real retry policy."""
        if back_s > 0:
            self._later(back_s, lambda: self._decide(req, outcome, retry_after))
        else:
            self._decide(req, outcome, retry_after)

    def _decide(self, req: _Req, outcome: Outcome, retry_after: float) -> None:
        d = decide(
            self.policy[req.batch],
            self.budgets[req.src],
            attempt=req.attempts,
            outcome=outcome,
            now=self.env.now,
            rng=self.rng,
            retry_after_s=retry_after or None,
            previous_delay=req.prev_delay,
        )
        if not d.retry:
            self.series.failed[req.bucket, req.src] += 1
            self.reasons[d.reason] = self.reasons.get(d.reason, 0) + 1
            return
        req.prev_delay = d.delay
        if d.delay > 0:
            self._later(d.delay, lambda: self.attempt(req))
        else:
            self.attempt(req)

    # --- processes ----------------------------------------------------------------------------------
    def arrivals(self, src: int) -> Any:
        """Interactive Poisson arrivals, piecewise-constant rate per minute (and at event edges)."""
        sc, env, name = self.sc, self.env, self.names[src]
        share = 1.0 - sc.demand.batch_share
        start = 0.0
        for end in step_edges(sc):
            rate = share * rate_rps(sc, name, (start + end) / 2)
            if rate > 0:
                nxt = start + self.rng.expovariate(rate)
                while nxt < end:
                    yield env.timeout(nxt - env.now)
                    self.arrive(src, False)
                    nxt += self.rng.expovariate(rate)
            yield env.timeout(end - env.now)
            start = end

    def batches(self, src: int) -> Any:
        """Synchronised submissions: every batch_period_s, a period's worth of batch work at once."""
        sc, env, name = self.sc, self.env, self.names[src]
        period = sc.demand.batch_period_s
        t = self.rng.uniform(0.0, period)  # each region's scheduler fires at its own second of the period
        yield env.timeout(t)
        while t < sc.duration_s:
            mean = sc.demand.batch_share * rate_rps(sc, name, t) * period
            for _ in range(int(self.np_rng.poisson(mean))):
                self.arrive(src, True)
            t += period
            yield env.timeout(max(0.0, min(t, sc.duration_s) - env.now))

    def failures(self, r: int) -> Any:
        sc, env = self.sc, self.env
        per_gpu = 1.0 / (sc.gpu_mtbf_h * 3600.0)
        healthy, busy, name = self.routing.healthy, self.routing.busy, self.names[r]
        while True:
            rate = max(healthy[name], 1) * per_gpu
            yield env.timeout(self.rng.expovariate(rate))
            if healthy[name] <= 0:
                continue
            if self.rng.random() < busy[name] / healthy[name]:
                self.kill(r)
            self.down[r] += 1
            self._refresh(r)
            self._later(sc.repair_s, lambda: self._repair(r))

    def _repair(self, r: int) -> None:
        self.down[r] -= 1
        self._refresh(r)

    def _refresh(self, r: int) -> None:
        healthy, busy, name = self.routing.healthy, self.routing.busy, self.names[r]
        healthy[name] = 0 if self.outage[r] else self.gpus[r] - self.down[r]
        while busy[name] > healthy[name]:
            self.kill(r)

    def outage_window(self, r: int, start: float, end: float) -> Any:
        yield self.env.timeout(start)
        self.outage[r] = True
        self._refresh(r)
        yield self.env.timeout(end - start)
        self.outage[r] = False
        self._refresh(r)

    def ticks(self) -> Any:
        """The traffic manager's period: reports → table; utilization samples; progress."""
        sc, env = self.sc, self.env
        period = sc.traffic.period_s
        busy = self.routing.busy
        while env.now < sc.duration_s:
            now = env.now
            if self.routing.uses_table:  # the other policies never read the table (the gateway's neither)
                self.routing.update(now)
            b = self._bucket(now)
            for i, name in enumerate(self.names):
                self.series.busy_sum[b, i] += busy[name]
            self.series.samples[b] += 1
            if self.progress is not None:
                self.progress(now, sc.duration_s)
            yield env.timeout(period)

    def run(self) -> SimReport:
        sc, env = self.sc, self.env
        wall0 = time.perf_counter()
        for i in range(len(self.names)):
            if sc.demand.batch_share < 1:
                env.process(self.arrivals(i))
            if sc.demand.batch_share > 0:
                env.process(self.batches(i))
            if sc.gpu_mtbf_h > 0:
                env.process(self.failures(i))
        for e in sc.events:
            if e.kind == "outage":
                env.process(self.outage_window(self.idx[e.region], e.start_s, e.end_s))
        env.process(self.ticks())
        # Let what arrived before the end finish: the longest retry chain plus a long service time.
        env.run(until=sc.duration_s + 3 * (sc.client.cap_s + sc.retry_after_s) + 20 * sc.service.mean_s + 60)
        if self.progress is not None:
            self.progress(sc.duration_s, sc.duration_s)
        table = self.routing.manager.table
        return SimReport.build(
            sc,
            self.names,
            self.series,
            np.frombuffer(self.latencies, dtype=np.float64) if len(self.latencies) else np.zeros(0),
            attempts=self.attempts_total,
            reasons=self.reasons,
            busy_on_arrival=self.busy_on_arrival,
            wall_s=time.perf_counter() - wall0,
            mode="event",
            table_versions=table.version if table is not None else 0,
        )
