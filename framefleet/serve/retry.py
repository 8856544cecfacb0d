"""Retry policy (pure: no I/O, time and randomness passed in). The live client and the simulator both
call these functions, so what the simulator predicts is what the fleet does.

Defaults follow the published practice (Google SRE, gRPC A6, Brooker; see docs/serving.md):
- at most 3 attempts per request (Google SRE);
- exponential backoff with *full jitter*, `uniform(0, min(cap, base·multiplier^(n-1)))` (Brooker/AWS,
  gRPC A6): no-jitter backoff re-synchronises the callers that caused the overload;
- a retry budget: retries ≤ 10% of requests over a sliding window, so a 3× overload cannot become a
  9× retry storm (SRE: worst case ~1.1× instead of ~3×); a small floor lets a quiet client still retry;
- `Retry-After` from the server is waited out, plus the jittered backoff; "do not retry" is obeyed;
- optional scheduling-time jitter: work that is not interactive starts after a random delay, which
  spreads synchronised batch submissions (cron, campaigns) before they ever reach the fleet.

    policy = RetryPolicy()
    budget = RetryBudget.for_policy(policy)
    budget.record_request(now)
    d = decide(policy, budget, attempt=1, outcome=Outcome.BUSY, now=now, rng=rng)
    if d.retry: sleep(d.delay)
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from framefleet.serve.balance import RateMeter


class Outcome(enum.Enum):
    OK = "ok"
    BUSY = "busy"  # the worker/region had no free slot: retry elsewhere or later
    RETRYABLE = "retryable"  # connection lost, worker died mid-request, 5xx
    DO_NOT_RETRY = "do_not_retry"  # the server said so (overloaded by retries, pushback < 0)
    FATAL = "fatal"  # bad request: retrying cannot help


class Jitter(enum.Enum):
    NONE = "none"  # the naive baseline: every caller retries at the same instants
    FULL = "full"
    DECORRELATED = "decorrelated"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_s: float = 0.1
    cap_s: float = 2.0
    multiplier: float = 2.0
    jitter: Jitter = Jitter.FULL
    budget_ratio: float | None = 0.1  # retries ≤ this fraction of requests in the window; None: no budget
    budget_window_s: float = 10.0
    budget_min_retries: int = 2  # per window: a quiet client can still use all 3 attempts of one request
    schedule_jitter_s: float = 0.0  # max random delay before the first attempt (non-interactive work)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be ≥ 1, got {self.max_attempts}")
        if self.base_s < 0 or self.cap_s < self.base_s or self.multiplier < 1:
            raise ValueError("backoff needs 0 ≤ base_s ≤ cap_s and multiplier ≥ 1")
        if (self.budget_ratio is not None and self.budget_ratio < 0) or self.budget_window_s <= 0:
            raise ValueError("budget_ratio must be ≥ 0 and budget_window_s > 0")
        if self.schedule_jitter_s < 0:
            raise ValueError("schedule_jitter_s must be ≥ 0")

    @classmethod
    def naive(cls) -> RetryPolicy:
        """Immediate retries, no jitter, no budget: the baseline every benchmark compares against."""
        return cls(base_s=0.0, cap_s=0.0, jitter=Jitter.NONE, budget_ratio=None, budget_min_retries=0)


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random, previous_delay: float = 0.0) -> float:
    """Seconds to wait before attempt `attempt + 1`, after `attempt` attempts have failed (attempt ≥ 1)."""
    ceiling = min(policy.cap_s, policy.base_s * policy.multiplier ** (attempt - 1))
    if policy.jitter is Jitter.NONE:
        return ceiling
    if policy.jitter is Jitter.FULL:
        return rng.uniform(0.0, ceiling)
    # Decorrelated: grows from the previous sleep rather than the attempt number.
    return min(policy.cap_s, rng.uniform(policy.base_s, max(policy.base_s, previous_delay * 3)))


def schedule_delay(policy: RetryPolicy, rng: random.Random) -> float:
    """Random delay before the *first* attempt of non-interactive work (0 when disabled)."""
    return rng.uniform(0.0, policy.schedule_jitter_s) if policy.schedule_jitter_s > 0 else 0.0


@dataclass
class RetryBudget:
    """Requests and retries over a sliding window (fixed buckets, O(1) per call: the simulator keeps
    one per client population). A retry is allowed while retries + 1 ≤ max(ratio · requests, min_retries):
    the floor lets a quiet client retry at all, and does not add to the ratio of a busy one, whose attempts
    per request therefore stay ≤ 1 + ratio."""

    ratio: float
    window_s: float
    min_retries: int = 0
    buckets: int = 10
    _meter: RateMeter = field(init=False, repr=False)

    @classmethod
    def for_policy(cls, policy: RetryPolicy) -> RetryBudget | None:
        if policy.budget_ratio is None:
            return None
        return cls(policy.budget_ratio, policy.budget_window_s, policy.budget_min_retries)

    def __post_init__(self) -> None:
        self._meter = RateMeter(self.window_s, self.buckets)

    def record_request(self, now: float, n: float = 1.0) -> None:
        self._meter.record("requests", now, n)

    def record_retry(self, now: float, n: float = 1.0) -> None:
        self._meter.record("retries", now, n)

    def counts(self, now: float) -> tuple[float, float]:
        totals = self._meter.totals(now)
        return totals.get("requests", 0.0), totals.get("retries", 0.0)

    def can_retry(self, now: float) -> bool:
        requests, retries = self.counts(now)
        return retries + 1 <= max(self.ratio * requests, self.min_retries)


@dataclass(frozen=True)
class Decision:
    retry: bool
    delay: float  # seconds to wait before the next attempt (0 when not retrying)
    reason: str


def decide(
    policy: RetryPolicy,
    budget: RetryBudget | None,
    *,
    attempt: int,
    outcome: Outcome,
    now: float,
    rng: random.Random,
    retry_after_s: float | None = None,
    previous_delay: float = 0.0,
) -> Decision:
    """Whether to retry after `attempt` attempts ended in `outcome`, and after how long.

    Spends one unit of the budget when it says yes (the caller must then really retry)."""
    if outcome is Outcome.OK:
        return Decision(False, 0.0, "succeeded")
    if outcome is Outcome.FATAL:
        return Decision(False, 0.0, "not retryable")
    if outcome is Outcome.DO_NOT_RETRY:
        return Decision(False, 0.0, "server said do not retry")
    if attempt >= policy.max_attempts:
        return Decision(False, 0.0, f"attempt cap ({policy.max_attempts}) reached")
    if budget is not None and not budget.can_retry(now):
        return Decision(False, 0.0, "retry budget exhausted")
    delay = backoff_delay(policy, attempt, rng, previous_delay)
    if retry_after_s is not None and retry_after_s > 0:
        # Added, not max(): every caller rejected together gets the same Retry-After, and waiting exactly
        # that long would bring them back together. The jittered backoff on top spreads them out.
        delay += retry_after_s
    if budget is not None:
        budget.record_retry(now)
    return Decision(True, delay, f"retry after {outcome.value}")
