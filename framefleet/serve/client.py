"""Python SDK: `FramefleetClient` (sync) and `AsyncFramefleetClient` (async), twins with the same methods.

Retries follow serve/retry.py: exponential backoff with full jitter, at most 3 attempts, a retry budget
(≤ 10% of requests over 10 s), `Retry-After` waited out, "do not retry" obeyed, and optional scheduling
jitter for work that is not interactive. Every logical request carries one Idempotency-Key across its
attempts, so a retry after a lost response finds the first result instead of running twice.

    from framefleet.serve.client import FramefleetClient
    client = FramefleetClient("http://127.0.0.1:8100", api_key="dev-key", region="eu-west")
    out = client.run("synthetic", {"echo": 1})      # -> Result(ok=True, attempts=1, body={...})
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from framefleet.serve.retry import Outcome, RetryBudget, RetryPolicy, decide, schedule_delay

RETRYABLE_REASONS = {"busy", "worker_failed", "tenant_limit"}


@dataclass
class Result:
    ok: bool
    attempts: int
    status: int | None  # HTTP status of the last attempt (None: no response at all)
    body: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why it stopped: "succeeded", "attempt cap (3) reached", ...
    latency_s: float = 0.0


def classify(status: int | None, body: dict[str, Any], headers: Mapping[str, str]) -> Outcome:
    """Map one HTTP attempt to a retry outcome."""
    if status is None:
        return Outcome.RETRYABLE  # connection refused/reset, timeout
    if status == 200:
        return Outcome.OK
    if headers.get("x-framefleet-retry", "").lower() == "no":
        return Outcome.DO_NOT_RETRY
    reason = (body.get("error") or {}).get("reason", "")
    if status in (429, 503) and reason in RETRYABLE_REASONS:
        return Outcome.BUSY if reason != "worker_failed" else Outcome.RETRYABLE
    if status in (502, 503, 504):
        return Outcome.RETRYABLE
    return Outcome.FATAL


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class _Base:
    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        region: str,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.region = region
        self.policy = policy or RetryPolicy()
        self.budget = RetryBudget.for_policy(self.policy)
        self.rng = rng or random.Random()
        self.clock = clock
        self.headers = {"Authorization": f"Bearer {api_key}", "X-Region": region}

    def _request_headers(self, key: str, attempt: int) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": key, "X-Framefleet-Attempt": str(attempt)}

    def _start(self) -> float:
        if self.budget is not None:
            self.budget.record_request(self.clock())
        return self.clock()

    def _after_attempt(
        self, resp: httpx.Response | None, attempt: int, previous_delay: float, t0: float
    ) -> tuple[Result | None, float]:
        """The decision after one attempt, shared by the sync and async twins: (final result, None) when
        done, else (None, seconds to wait before the next attempt)."""
        status, body, headers = self._parse(resp)
        outcome = classify(status, body, headers)
        d = decide(
            self.policy,
            self.budget,
            attempt=attempt,
            outcome=outcome,
            now=self.clock(),
            rng=self.rng,
            retry_after_s=_retry_after(headers),
            previous_delay=previous_delay,
        )
        if not d.retry:
            return Result(outcome is Outcome.OK, attempt, status, body, d.reason, self.clock() - t0), 0.0
        return None, d.delay

    @staticmethod
    def _parse(response: httpx.Response | None) -> tuple[int | None, dict[str, Any], Mapping[str, str]]:
        if response is None:
            return None, {}, {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}, response.headers


class FramefleetClient(_Base):
    """Blocking client."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        region: str,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        super().__init__(url, api_key=api_key, region=region, policy=policy, rng=rng)
        self.http = http or httpx.Client(timeout=httpx.Timeout(600.0, connect=2.0))

    def run(
        self, task: str, payload: dict[str, Any], *, interactive: bool = True, idempotency_key: str | None = None
    ) -> Result:
        key = idempotency_key or secrets.token_hex(16)
        if not interactive:
            time.sleep(schedule_delay(self.policy, self.rng))
        t0 = self._start()
        attempt, delay = 0, 0.0
        while True:
            attempt += 1
            try:
                resp: httpx.Response | None = self.http.post(
                    f"{self.url}/v1/{task}", json=payload, headers=self._request_headers(key, attempt)
                )
            except httpx.HTTPError:
                resp = None
            done, delay = self._after_attempt(resp, attempt, delay, t0)
            if done is not None:
                return done
            time.sleep(delay)

    def close(self) -> None:
        self.http.close()


class AsyncFramefleetClient(_Base):
    """asyncio client; the twin of FramefleetClient."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        region: str,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(url, api_key=api_key, region=region, policy=policy, rng=rng)
        # No connection-pool limit: a pool that makes requests wait for a connection is a hidden queue.
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(600.0, connect=2.0, pool=None), limits=httpx.Limits(max_connections=None)
        )

    async def run(
        self, task: str, payload: dict[str, Any], *, interactive: bool = True, idempotency_key: str | None = None
    ) -> Result:
        key = idempotency_key or secrets.token_hex(16)
        if not interactive:
            await asyncio.sleep(schedule_delay(self.policy, self.rng))
        t0 = self._start()
        attempt, delay = 0, 0.0
        while True:
            attempt += 1
            try:
                resp: httpx.Response | None = await self.http.post(
                    f"{self.url}/v1/{task}", json=payload, headers=self._request_headers(key, attempt)
                )
            except httpx.HTTPError:
                resp = None
            done, delay = self._after_attempt(resp, attempt, delay, t0)
            if done is not None:
                return done
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self.http.aclose()
