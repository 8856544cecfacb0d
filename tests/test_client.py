"""Client SDK retry behaviour against scripted server replies (httpx.MockTransport): which answers are
retried, how long it waits, the attempt cap, the budget, and the sync/async twins behaving alike."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import httpx
import pytest

from framefleet.serve.client import AsyncFramefleetClient, FramefleetClient, classify
from framefleet.serve.retry import Outcome, RetryPolicy

BUSY = (503, {"error": {"reason": "busy"}}, {"Retry-After": "0"})
OK = (200, {"result": {"x": 1}, "region": "north"}, {})


def scripted(replies: list[tuple[int, dict, dict]], seen: list[httpx.Request]) -> httpx.MockTransport:  # type: ignore[type-arg]
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body, headers = replies[min(len(seen) - 1, len(replies) - 1)]
        if status == -1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, json=body, headers=headers)

    return httpx.MockTransport(handler)


def sync_client(replies: list, seen: list, policy: RetryPolicy | None = None) -> FramefleetClient:  # type: ignore[type-arg]
    return FramefleetClient(
        "http://gw",
        api_key="k",
        region="north",
        policy=policy or RetryPolicy(),
        rng=random.Random(0),
        http=httpx.Client(transport=scripted(replies, seen)),
    )


def async_run(replies: list, seen: list, policy: RetryPolicy | None = None):  # type: ignore[no-untyped-def,type-arg]
    async def go():  # type: ignore[no-untyped-def]
        c = AsyncFramefleetClient(
            "http://gw",
            api_key="k",
            region="north",
            policy=policy or RetryPolicy(),
            rng=random.Random(0),
            http=httpx.AsyncClient(transport=scripted(replies, seen)),
        )
        return await c.run("synthetic", {"a": 1})

    return asyncio.run(go())


RUNNERS: list[Callable] = [  # type: ignore[type-arg]
    lambda replies, seen, policy=None: sync_client(replies, seen, policy).run("synthetic", {"a": 1}),
    async_run,
]


@pytest.mark.parametrize("run", RUNNERS, ids=["sync", "async"])
def test_busy_then_ok_is_retried_with_one_idempotency_key(run: Callable) -> None:  # type: ignore[type-arg]
    seen: list[httpx.Request] = []
    res = run([BUSY, BUSY, OK], seen)
    assert res.ok and res.attempts == 3 and res.body["region"] == "north"
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 1  # one logical request
    assert [r.headers["X-Framefleet-Attempt"] for r in seen] == ["1", "2", "3"]
    assert all(r.headers["X-Region"] == "north" and r.headers["Authorization"] == "Bearer k" for r in seen)


@pytest.mark.parametrize("run", RUNNERS, ids=["sync", "async"])
def test_attempt_cap_and_non_retryable_answers(run: Callable) -> None:  # type: ignore[type-arg]
    seen: list[httpx.Request] = []
    res = run([BUSY], seen)
    assert not res.ok and res.attempts == 3 and "cap" in res.reason and len(seen) == 3
    seen = []
    res = run([(400, {"error": {"reason": "malformed_json"}}, {})], seen)
    assert not res.ok and res.attempts == 1 and res.status == 400
    seen = []
    res = run([(503, {"error": {"reason": "busy"}}, {"X-Framefleet-Retry": "no"})], seen)
    assert not res.ok and res.attempts == 1 and "do not retry" in res.reason


@pytest.mark.parametrize("run", RUNNERS, ids=["sync", "async"])
def test_connection_errors_are_retried(run: Callable) -> None:  # type: ignore[type-arg]
    seen: list[httpx.Request] = []
    res = run([(-1, {}, {}), OK], seen)
    assert res.ok and res.attempts == 2


def test_retry_after_is_waited_out() -> None:
    seen: list[httpx.Request] = []
    t0 = time.monotonic()
    res = sync_client([(503, {"error": {"reason": "busy"}}, {"Retry-After": "1"}), OK], seen).run("synthetic", {})
    assert res.ok and time.monotonic() - t0 >= 1.0


def test_budget_stops_retries() -> None:
    seen: list[httpx.Request] = []
    policy = RetryPolicy(budget_ratio=0.1, budget_min_retries=1, base_s=0.0, cap_s=0.0)
    client = sync_client([BUSY], seen, policy)
    results = [client.run("synthetic", {}) for _ in range(20)]
    retries = sum(r.attempts - 1 for r in results)
    assert retries <= 2  # max(10% of 20, 1) = 2 within the window
    assert any("budget" in r.reason for r in results)


def test_classify() -> None:
    assert classify(None, {}, {}) is Outcome.RETRYABLE
    assert classify(200, {}, {}) is Outcome.OK
    assert classify(503, {"error": {"reason": "busy"}}, {}) is Outcome.BUSY
    assert classify(503, {"error": {"reason": "worker_failed"}}, {}) is Outcome.RETRYABLE
    assert classify(429, {"error": {"reason": "tenant_limit"}}, {}) is Outcome.BUSY
    assert classify(502, {}, {}) is Outcome.RETRYABLE
    assert classify(404, {}, {}) is Outcome.FATAL
    assert classify(503, {}, {"x-framefleet-retry": "no"}) is Outcome.DO_NOT_RETRY
