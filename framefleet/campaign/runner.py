"""Run a campaign: hand each recipient to a worker, record every outcome, watch the workers' health.

    framefleet campaign run data/campaign --campaign friends-day --date 2027-02-04 --limit 100

The runner drives a `Pool` of workers (Ray actors in `ray_pool`, or threads in this process for small runs
and tests): each worker holds at most one recipient at a time, so a worker that goes bad holds little work,
and a free worker takes the next recipient when the throttle allows. Outcomes go to the store as they come:

- Resuming is the default: recipients already rendered or skipped in the store are not touched, so a rerun
  after a crash renders only what is missing. The store holds at most one video per recipient (see
  `store.campaigns`), whatever happens in between.
- `Health` (pure) blocklists workers with a high error rate or slow renders; their recipient goes back to the
  queue for another worker. A render that hangs is given up on after `stuck_factor` fleet medians.
- The kill switch is a flag in the store (`framefleet campaign kill NAME`), read every `poll_s` seconds: no
  new render starts after it is seen, and in-flight ones are cancelled.
"""

from __future__ import annotations

import re
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import Any, Protocol

from framefleet.campaign.dataset import Dataset
from framefleet.campaign.health import Health, Throttle
from framefleet.campaign.rollout import local_day_start
from framefleet.store.campaigns import CampaignStore


class Pool(Protocol):
    """Workers that render one recipient at a time each (see `ray_pool.RayPool`, `LocalPool`)."""

    workers: list[str]

    def submit(self, worker: str, recipient: str) -> Hashable: ...

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[tuple[Hashable, dict[str, Any] | str]]:
        """Finished handles with their result dict, or the error text of a failed task."""
        ...

    def cancel(self, handle: Hashable) -> None: ...

    def retire(self, worker: str) -> None: ...


@dataclass(frozen=True)
class RunConfig:
    campaign: str
    day: date
    limit: int | None = None
    only: tuple[str, ...] | None = None  # these recipients (in this order) instead of everyone
    rate: float | None = None  # renders started per second, at most (the global throttle)
    retries: int = 2  # attempts per recipient beyond the first, on other workers
    poll_s: float = 1.0  # how often the kill switch is read
    health: Health = field(default_factory=Health)


@dataclass
class RunSummary:
    campaign: str
    rendered: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    already_done: int = 0
    blocklisted: dict[str, str] = field(default_factory=dict)
    killed: bool = False
    seconds: float = 0.0
    input_problems: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reason_key(reason: str) -> str:
    """Skip reasons grouped for the summary: numbers and per-photo detail removed."""
    return re.sub(r"\d+", "N", reason.split(";")[0]).strip()


@dataclass
class _Flight:
    recipient: str
    worker: str
    started: float


class _Run:
    """The state of one run; `step` is one turn of the loop (named parts, so each stays small)."""

    def __init__(self, ds: Dataset, cs: CampaignStore, pool: Pool, cfg: RunConfig, clock: Callable[[], float]):
        self.ds, self.cs, self.pool, self.cfg, self.clock = ds, cs, pool, cfg, clock
        self.summary = RunSummary(cfg.campaign, input_problems=len(ds.problems))
        self.health = cfg.health
        self.health.add(pool.workers)
        self.throttle = Throttle(cfg.rate, burst=max(1.0, cfg.rate or 1.0))
        self.flights: dict[Hashable, _Flight] = {}
        self.attempts: Counter[str] = Counter()
        self.failed_on: dict[str, set[str]] = {}  # recipient → workers it failed on: retries go elsewhere
        self.queue: deque[str] = deque()
        self.last_poll = -1e9

    def plan(self) -> None:
        done = self.cs.finished(self.cfg.campaign)
        wanted = [p.id for p in self.ds.people] if self.cfg.only is None else list(dict.fromkeys(self.cfg.only))
        todo = [r for r in wanted if r not in done]
        self.summary.already_done = len(wanted) - len(todo)
        self.queue.extend(todo[: self.cfg.limit] if self.cfg.limit is not None else todo)

    def where(self, recipient: str) -> dict[str, Any]:
        person = self.ds.person(recipient)
        assert person is not None
        return {"tz": person.tz, "opens_at": local_day_start(self.cfg.day, person.tz).astimezone(UTC)}

    def killed(self, now: float) -> bool:
        if now - self.last_poll >= self.cfg.poll_s:
            self.last_poll = now
            self.summary.killed = self.cs.killed(self.cfg.campaign)
        return self.summary.killed

    def _next_for(self, worker: str) -> str | None:
        """The first queued recipient that has not failed on `worker` (looking a bounded way down the queue)."""
        healthy = set(self.health.healthy())
        for i, recipient in enumerate(self.queue):
            if i >= 64:
                break
            tried = self.failed_on.get(recipient, set())
            if worker not in tried or healthy <= tried:  # failed everywhere: any worker, the attempt cap decides
                del self.queue[i]
                return recipient
        return None

    def launch(self, now: float) -> None:
        busy = {f.worker for f in self.flights.values()}
        for worker in self.health.healthy():
            if not self.queue or worker in busy:
                continue
            recipient = self._next_for(worker)
            if recipient is None:
                continue
            if not self.throttle.take(now):
                self.queue.appendleft(recipient)
                continue
            handle = self.pool.submit(worker, recipient)
            self.flights[handle] = _Flight(recipient, worker, now)
            self.attempts[recipient] += 1

    def settle(self, handle: Hashable, result: dict[str, Any] | str) -> None:
        f = self.flights.pop(handle)
        if isinstance(result, str) or result.get("status") == "failed":
            self.fail(f, result if isinstance(result, str) else str(result.get("reason")))
            return
        # only renders are timed: a skip takes milliseconds and would make its worker look fast
        rendered = result["status"] == "rendered"
        blocked = self.health.record(f.worker, ok=True, seconds=float(result["seconds"]) if rendered else None)
        if blocked is not None:  # slow, not broken: this result is good, later work goes elsewhere
            self.retire(f.worker, blocked)
        if result["status"] == "skipped":
            self.cs.record_skip(self.cfg.campaign, f.recipient, reason=str(result["reason"]), **self.where(f.recipient))
            key = reason_key(str(result["reason"]))
            self.summary.skipped[key] = self.summary.skipped.get(key, 0) + 1
            return
        self.cs.record_rendered(
            self.cfg.campaign, f.recipient, video=Path(result["path"]), media=result["media"],
            machine=f.worker, render_s=float(result["seconds"]), **self.where(f.recipient),
        )  # fmt: skip
        self.summary.rendered += 1

    def fail(self, f: _Flight, why: str) -> None:
        self.failed_on.setdefault(f.recipient, set()).add(f.worker)
        blocked = self.health.record(f.worker, ok=False)
        if blocked is not None:
            self.retire(f.worker, blocked)
        if self.attempts[f.recipient] <= self.cfg.retries:
            self.queue.appendleft(f.recipient)  # first in line, on another worker next time
            return
        self.cs.record_failure(self.cfg.campaign, f.recipient, reason=why[:500], machine=f.worker,
                               **self.where(f.recipient))  # fmt: skip
        self.summary.failed += 1

    def retire(self, worker: str, why: str) -> None:
        self.summary.blocklisted[worker] = why
        self.pool.retire(worker)
        for handle, f in list(self.flights.items()):
            if f.worker == worker:
                self.flights.pop(handle)
                self.pool.cancel(handle)
                self.queue.appendleft(f.recipient)

    def unstick(self, now: float) -> None:
        for handle, f in list(self.flights.items()):
            if handle in self.flights and self.health.stuck(f.worker, now - f.started):
                self.pool.cancel(handle)
                self.flights.pop(handle)
                self.fail(f, f"render on {f.worker} hung for {now - f.started:.0f} s")

    def stop(self) -> None:
        for handle in list(self.flights):
            self.pool.cancel(handle)
        self.flights.clear()


def run_campaign(
    ds: Dataset,
    cs: CampaignStore,
    pool: Pool,
    cfg: RunConfig,
    *,
    on_progress: Callable[[RunSummary, int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Render every recipient not yet done; `on_progress(summary, done, total)` after each outcome."""
    cs.ensure(cfg.campaign, cfg.day)
    run = _Run(ds, cs, pool, cfg, clock)
    run.plan()
    total, t0 = len(run.queue), clock()
    while run.queue or run.flights:
        now = clock()
        if run.killed(now):
            run.stop()
            break
        run.launch(now)
        if not run.flights:
            if not run.health.healthy():
                break
            time.sleep(0.02)  # throttled: wait for the next token
            continue
        for handle, result in pool.wait(list(run.flights), timeout=min(cfg.poll_s, 0.5)):
            if handle in run.flights:  # a cancelled render that finished anyway is ignored
                run.settle(handle, result)
                if on_progress is not None:
                    s = run.summary
                    on_progress(s, s.rendered + sum(s.skipped.values()) + s.failed, total)
        run.unstick(clock())
    run.summary.blocklisted = dict(run.health.blocklist)
    run.summary.seconds = round(clock() - t0, 3)
    return run.summary
