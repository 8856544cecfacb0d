"""Fleet policy for a campaign run: which workers to stop trusting, and how fast to start renders. Pure.

`Health` keeps, per worker, its outcomes and render times. A worker is blocklisted when

- its error rate is at least `max_error_rate` over at least `min_tasks` outcomes (a broken disk, a bad
  driver, a missing font: everything it touches fails), or
- its median render time is more than `slow_factor` times the median of the other workers, again over
  `min_tasks` renders (a throttled CPU, a noisy neighbour), or
- a render on it has been running for more than `stuck_factor` times the fleet median (a hung process):
  that render counts as a failure and its recipient goes elsewhere.

The last healthy worker is never blocklisted: a slow campaign beats a stopped one, and the operator sees it.

`Throttle` is a token bucket: at most `rate` renders start per second, with bursts of `burst`. The runner
passes the time in, so the simulator and tests drive it without sleeping.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class _Record:
    ok: int = 0
    failed: int = 0
    times: list[float] = field(default_factory=list)

    @property
    def tasks(self) -> int:
        return self.ok + self.failed


@dataclass
class Health:
    min_tasks: int = 3
    max_error_rate: float = 0.5
    slow_factor: float = 3.0
    stuck_factor: float = 6.0
    records: dict[str, _Record] = field(default_factory=dict)
    blocklist: dict[str, str] = field(default_factory=dict)  # worker → why

    def add(self, workers: Iterable[str]) -> None:
        for w in workers:
            self.records.setdefault(w, _Record())

    def healthy(self) -> list[str]:
        return [w for w in self.records if w not in self.blocklist]

    def fleet_median(self, *, excluding: str | None = None) -> float | None:
        times = [t for w, r in self.records.items() if w != excluding and w not in self.blocklist for t in r.times]
        return statistics.median(times) if times else None

    def record(self, worker: str, *, ok: bool, seconds: float | None = None) -> str | None:
        """Note one outcome; returns the reason when this blocklists the worker."""
        r = self.records.setdefault(worker, _Record())
        if ok:
            r.ok += 1
            if seconds is not None:
                r.times.append(seconds)
        else:
            r.failed += 1
        return self._judge(worker)

    def stuck(self, worker: str, running_s: float) -> bool:
        """Whether a render running this long should be given up on (and counted as a failure)."""
        median = self.fleet_median()
        return median is not None and running_s > self.stuck_factor * max(median, 0.5)

    def _judge(self, worker: str) -> str | None:
        if worker in self.blocklist or len(self.healthy()) <= 1:
            return None
        r = self.records[worker]
        why = None
        if r.tasks >= self.min_tasks and r.failed / r.tasks >= self.max_error_rate:
            why = f"error rate {r.failed}/{r.tasks}"
        elif len(r.times) >= self.min_tasks:
            others = self.fleet_median(excluding=worker)
            mine = statistics.median(r.times)
            if others is not None and mine > self.slow_factor * others:
                why = f"median render {mine:.1f} s vs fleet {others:.1f} s"
        if why is not None:
            self.blocklist[worker] = why
        return why


@dataclass
class Throttle:
    """A token bucket: `rate` renders per second (None: unlimited), bursts up to `burst`."""

    rate: float | None
    burst: float = 1.0
    tokens: float = 1.0
    last: float | None = None

    def take(self, now: float) -> bool:
        if self.rate is None:
            return True
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
