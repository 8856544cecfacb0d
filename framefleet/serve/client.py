"""Python SDK: `FramefleetClient` (sync) and `AsyncFramefleetClient` (async), twins with the same methods.

Retries follow serve/retry.py: exponential backoff with full jitter, at most 3 attempts, a retry budget
(≤ 10% of requests over 10 s), `Retry-After` waited out, "do not retry" obeyed, and optional scheduling
jitter for work that is not interactive. Every logical request carries one Idempotency-Key across its
attempts, so a retry after a lost response finds the first result instead of running twice.

    from framefleet.serve.client import FramefleetClient
    client = FramefleetClient("http://127.0.0.1:8100", api_key="dev-key", region="eu-west")
    out = client.run("synthetic", {"echo": 1})      # -> Result(ok=True, attempts=1, body={...})
    got = client.animate("photo.jpg", prompt="pan left", seed=3, out="clip.mp4")
    got.variant["id"], got.output                     # the stored variant, the downloaded MP4
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from framefleet.serve.retry import Outcome, RetryBudget, RetryPolicy, decide, schedule_delay

RETRYABLE_REASONS = {"busy", "worker_failed", "tenant_limit", "in_progress"}
Source = str | Path | bytes | None  # a file to upload (path or bytes), or None with asset_id


@dataclass
class Result:
    ok: bool
    attempts: int
    status: int | None  # HTTP status of the last attempt (None: no response at all)
    body: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why it stopped: "succeeded", "attempt cap (3) reached", ...
    latency_s: float = 0.0
    output: Path | None = None  # animate/enhance with out=: where the variant's bytes were written

    @property
    def variant(self) -> dict[str, Any] | None:
        """The stored variant an animate or enhance request made (None otherwise)."""
        v = self.body.get("variant")
        return v if isinstance(v, dict) else None


def classify(status: int | None, body: dict[str, Any], headers: Mapping[str, str]) -> Outcome:
    """Map one HTTP attempt to a retry outcome."""
    if status is None:
        return Outcome.RETRYABLE  # connection refused/reset, timeout
    if status == 200:
        return Outcome.OK
    if headers.get("x-framefleet-retry", "").lower() == "no":
        return Outcome.DO_NOT_RETRY
    reason = (body.get("error") or {}).get("reason", "")
    if status in (409, 429, 503) and reason in RETRYABLE_REASONS:
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
    def _form(
        file_field: str, source: Source, asset_id: str | None, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """(files, data) of a multipart request; read once, sent again unchanged on every attempt."""
        if (source is None) == (asset_id is None):
            raise ValueError(f"give either a {file_field} (path or bytes) or asset_id")
        data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}
        if asset_id is not None:
            return {}, {**data, "asset_id": asset_id}
        if isinstance(source, bytes):
            return {file_field: (f"{file_field}.bin", source)}, data
        path = Path(source)  # type: ignore[arg-type]
        return {file_field: (path.name, path.read_bytes())}, data

    @staticmethod
    def _content_url(result: Result) -> str | None:
        url = result.body.get("content_url") if result.ok else None
        return url if isinstance(url, str) else None

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
        return self._retrying(
            lambda h: self.http.post(f"{self.url}/v1/{task}", json=payload, headers=h),
            idempotency_key or secrets.token_hex(16),
            interactive,
        )

    def _retrying(self, send: Callable[[dict[str, str]], httpx.Response], key: str, interactive: bool) -> Result:
        if not interactive:
            time.sleep(schedule_delay(self.policy, self.rng))
        t0 = self._start()
        attempt, delay = 0, 0.0
        while True:
            attempt += 1
            try:
                resp: httpx.Response | None = send(self._request_headers(key, attempt))
            except httpx.HTTPError:
                resp = None
            done, delay = self._after_attempt(resp, attempt, delay, t0)
            if done is not None:
                return done
            time.sleep(delay)

    def animate(
        self,
        image: Source = None,
        *,
        asset_id: str | None = None,
        prompt: str = "",
        out: str | Path | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Result:
        """Upload a still (path or bytes) or name an asset; the video is stored as a variant
        (`result.variant`) and, with `out`, downloaded there. Params: frames, steps, seed, sampler,
        guidance_image, guidance_text, fps."""
        return self._media("animate", "image", image, asset_id, {"prompt": prompt, **params}, out, idempotency_key)

    def enhance(
        self,
        video: Source = None,
        *,
        asset_id: str | None = None,
        out: str | Path | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Result:
        """Upload a video or name an asset; params: scale, fps, gate. See animate."""
        return self._media("enhance", "video", video, asset_id, params, out, idempotency_key)

    def _media(
        self, task: str, field: str, source: Source, asset_id: str | None, params: dict[str, Any],
        out: str | Path | None, key: str | None,
    ) -> Result:  # fmt: skip
        files, data = self._form(field, source, asset_id, params)
        result = self._retrying(
            lambda h: self.http.post(f"{self.url}/v1/{task}", files=files or None, data=data, headers=h),
            key or secrets.token_hex(16),
            True,
        )
        url = self._content_url(result)
        if out is not None and url is not None:
            result.output = self.download(url, out)
        return result

    def download(self, content_url: str, out: str | Path) -> Path:
        """A variant's bytes to `out`, written beside it and renamed, so `out` is whole or absent."""
        path = Path(out)
        part = path.with_name(path.name + ".part")
        try:
            with self.http.stream("GET", f"{self.url}{content_url}", headers=self.headers) as r:
                r.raise_for_status()
                with part.open("wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
        return path

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
        return await self._retrying(
            lambda h: self.http.post(f"{self.url}/v1/{task}", json=payload, headers=h),
            idempotency_key or secrets.token_hex(16),
            interactive,
        )

    async def _retrying(
        self, send: Callable[[dict[str, str]], Awaitable[httpx.Response]], key: str, interactive: bool
    ) -> Result:
        if not interactive:
            await asyncio.sleep(schedule_delay(self.policy, self.rng))
        t0 = self._start()
        attempt, delay = 0, 0.0
        while True:
            attempt += 1
            try:
                resp: httpx.Response | None = await send(self._request_headers(key, attempt))
            except httpx.HTTPError:
                resp = None
            done, delay = self._after_attempt(resp, attempt, delay, t0)
            if done is not None:
                return done
            await asyncio.sleep(delay)

    async def animate(
        self,
        image: Source = None,
        *,
        asset_id: str | None = None,
        prompt: str = "",
        out: str | Path | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Result:
        """The twin of FramefleetClient.animate."""
        return await self._media(
            "animate", "image", image, asset_id, {"prompt": prompt, **params}, out, idempotency_key
        )

    async def enhance(
        self,
        video: Source = None,
        *,
        asset_id: str | None = None,
        out: str | Path | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Result:
        """The twin of FramefleetClient.enhance."""
        return await self._media("enhance", "video", video, asset_id, params, out, idempotency_key)

    async def _media(
        self, task: str, field: str, source: Source, asset_id: str | None, params: dict[str, Any],
        out: str | Path | None, key: str | None,
    ) -> Result:  # fmt: skip
        files, data = self._form(field, source, asset_id, params)
        result = await self._retrying(
            lambda h: self.http.post(f"{self.url}/v1/{task}", files=files or None, data=data, headers=h),
            key or secrets.token_hex(16),
            True,
        )
        url = self._content_url(result)
        if out is not None and url is not None:
            result.output = await self.download(url, out)
        return result

    async def download(self, content_url: str, out: str | Path) -> Path:
        """The twin of FramefleetClient.download."""
        path = Path(out)
        part = path.with_name(path.name + ".part")
        try:
            async with self.http.stream("GET", f"{self.url}{content_url}", headers=self.headers) as r:
                r.raise_for_status()
                with part.open("wb") as f:
                    async for chunk in r.aiter_bytes(1 << 20):
                        f.write(chunk)
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
        return path

    async def aclose(self) -> None:
        await self.http.aclose()
