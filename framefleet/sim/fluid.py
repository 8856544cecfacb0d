"""Aggregate (fluid) mode: expected flows per time step instead of one event per request, for 1e9
requests a day. Same scenarios, same report, same routing code: the traffic manager's table comes from
`TrafficManager.update` on the same reports as in the event simulation.

Per step (a minute, split at event edges), for each source region s with fresh demand λ_s:
- attempts a_s = λ_s·m_s go home (traffic, local-only) or over the global pool by capacity (global);
- with the traffic policy, as `balance.pick_region` does request by request: home first; the part that
  finds its home region full goes to whichever of the table's other targets and the nearest ring with
  headroom has a free GPU, and fails only if all of them are full at once (independence assumed); with the
  spill policy likewise, over every region within `spill_budget_ms`, headroom or not (the second try after a
  busy arrival and the transit a claimed slot sits idle are not modelled here: the event mode is the judge);
- each region's blocking is Erlang-B of the erlangs offered to it;
- retries: each blocked attempt is retried (up to the attempt cap, within the retry budget) and meets the
  same blocking again, independently. That holds when retries are spread out by jittered backoff; with
  immediate retries into a full pool they are correlated and the event simulation is the judge.
- the steps are solved as a damped fixed point (the attempt rate and the blocking depend on each other).
Synchronised batches are treated as smooth demand, and there are no per-request latencies.
"""

from __future__ import annotations

import time

import numpy as np

from framefleet.serve.balance import capacity_shares, headroom_by
from framefleet.serve.traffic import RegionReport, TrafficManager, rings
from framefleet.sim.capacity import erlang_b
from framefleet.sim.demand import in_outage, rate_rps, step_edges
from framefleet.sim.engine import Progress
from framefleet.sim.report import Series, SimReport
from framefleet.sim.scenario import Scenario

_ITERATIONS = 40


def _fail_and_attempts(p: float, attempts_cap: int, q: float) -> tuple[float, float]:
    """(P(request fails), attempts per request) when each attempt is blocked with probability p and a
    retry happens with probability q (the budget's allowance)."""
    fail, attempts = p, 1.0  # one attempt left
    for _ in range(attempts_cap - 1):
        fail, attempts = p * ((1 - q) + q * fail), 1.0 + p * q * attempts
    return fail, attempts


def simulate_fluid(sc: Scenario, progress: Progress | None = None) -> SimReport:
    wall0 = time.perf_counter()
    names = sc.region_names
    n = len(names)
    series = Series.empty(sc, names)
    manager = TrafficManager(sc.rtt_ms, sc.traffic, headroom_by=headroom_by(sc.policy))
    budget = sc.traffic.spill_budget_ms
    mean_s = sc.service.mean_s
    cap = sc.client.max_attempts
    ratio = sc.client.budget_ratio
    down_share = sc.repair_s / (sc.gpu_mtbf_h * 3600.0 + sc.repair_s) if sc.gpu_mtbf_h > 0 else 0.0
    ring_of = [rings(s, names, sc.rtt_ms, sc.traffic.ring_radii_ms) for s in names]
    idx = {r: i for i, r in enumerate(names)}
    m = np.ones(n)  # attempts per request, carried between steps as the starting point
    attempts_total = 0.0
    start = 0.0
    for end in step_edges(sc):
        t, dt = (start + end) / 2, end - start
        lam = np.array([rate_rps(sc, r, t) for r in names])
        healthy = np.array(
            [0.0 if in_outage(sc, r.name, t) else r.gpus * (1 - down_share) for r in sc.regions]
        )  # fmt: skip
        slots = np.floor(healthy).astype(int)
        f = np.eye(n)  # where first attempts go; traffic and local-only: home first (pick_region rule 1)
        spill_to = np.zeros((n, n))  # where an attempt that finds its home region full goes instead
        if sc.policy in ("traffic", "spill"):
            reports = [RegionReport(r, int(slots[i]), mean_s) for i, r in enumerate(names)]
            table = manager.update(reports, dict(zip(names, (lam * m).tolist(), strict=True)), start)
            for s in range(n):
                # rule 2: the table's other targets, by their fractions; rule 3: the nearest ring with headroom
                for target, v in table.fractions(names[s]).items():
                    if (
                        target != names[s]
                        and v > 0
                        and (sc.policy == "traffic" or sc.rtt_ms[names[s]][target] <= budget)
                    ):
                        spill_to[s, idx[target]] = v
                if sc.policy == "spill":  # every region within the budget, headroom or not (pick_region_spill)
                    near = [j for j, r in enumerate(names) if j != s and sc.rtt_ms[names[s]][r] <= budget and slots[j]]
                    for j in near:
                        spill_to[s, j] = max(spill_to[s, j], 1.0 / len(near))
                    continue
                for ring in ring_of[s]:
                    open_ = [idx[r] for r in ring if table.has_headroom(r) and slots[idx[r]] > 0]
                    if open_:
                        for j in open_:
                            spill_to[s, j] = max(spill_to[s, j], 1.0 / len(open_))
                        break
        elif sc.policy == "global":
            shares = capacity_shares(dict(zip(names, healthy.tolist(), strict=True)))
            f = np.tile([shares.get(r, 0.0) for r in names], (n, 1))
        candidates = spill_to > 0
        has_spill = candidates.any(axis=1)
        blocking = np.zeros(n)
        spilled = np.zeros((n, n))
        for _ in range(_ITERATIONS):
            a = lam * m  # attempts per second by source
            # A spilled attempt fails only if every candidate is full at once (pick_region tries them all).
            all_full = np.where(has_spill, np.prod(np.where(candidates, blocking[None, :], 1.0), axis=1), 1.0)
            weight = spill_to * (1 - blocking)[None, :]
            share = np.divide(weight, weight.sum(axis=1, keepdims=True), out=np.zeros_like(weight),
                              where=weight.sum(axis=1, keepdims=True) > 0)  # fmt: skip
            spilled = (a * np.diag(f) * blocking * (1 - all_full))[:, None] * share  # [s, t], all served
            primary = a[:, None] * f  # [s, t]
            offered = (primary.sum(axis=0) + spilled.sum(axis=0)) * mean_s
            if sc.policy == "global":  # one pool: blocking of the whole planet's slots
                pooled = erlang_b(int(slots.sum()), float(offered.sum()))
                new_b = np.full(n, pooled)
            else:
                new_b = np.array([erlang_b(int(slots[i]), float(offered[i])) if slots[i] else 1.0 for i in range(n)])
            moved = float(np.abs(new_b - blocking).max())
            blocking = 0.5 * blocking + 0.5 * new_b
            local_fail = blocking * all_full
            p = (f * blocking[None, :]).sum(axis=1) - np.diag(f) * blocking + np.diag(f) * local_fail
            fails, new_m = np.zeros(n), np.ones(n)
            for s in range(n):
                demanded = sum(p[s] ** k for k in range(1, cap))
                q = 1.0 if ratio is None or demanded <= ratio else ratio / demanded
                fails[s], new_m[s] = _fail_and_attempts(float(p[s]), cap, q)
            moved = max(moved, float(np.abs(new_m - m).max()))
            m = 0.5 * m + 0.5 * new_m
            if moved < 1e-7:
                break
        a = lam * m
        served = a[:, None] * f * (1 - blocking)[None, :] + spilled
        ok = lam * (1 - fails)
        row = served.sum(axis=1)
        flows = np.divide(served * ok[:, None], row[:, None], out=np.zeros_like(served), where=row[:, None] > 0)
        b = min(int(start / sc.bucket_s), series.n - 1)
        series.requests[b] += lam * dt
        series.attempts[b] += a * dt
        series.succeeded[b] += ok * dt
        series.failed[b] += lam * fails * dt
        series.flows[b] += flows * dt
        carried = primary.sum(axis=0) * mean_s * (1 - blocking) + spilled.sum(axis=0) * mean_s
        series.busy_sum[b] += np.minimum(carried, slots) * dt
        series.samples[b] += dt
        attempts_total += float(a.sum() * dt)
        if progress is not None:
            progress(end, sc.duration_s)
        start = end
    return SimReport.build(
        sc,
        names,
        series,
        np.zeros(0),
        attempts=attempts_total,
        reasons={},
        wall_s=time.perf_counter() - wall0,
        mode="fluid",
        table_versions=manager.table.version if manager.table is not None else 0,
    )
