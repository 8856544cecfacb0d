"""The gateway: authenticates, picks a region by the routing table and a worker in it, forwards, never queues.

    POST /v1/animate         multipart: image (or asset_id), prompt, frames, steps, seed, ... → a variant
    POST /v1/enhance         multipart: video (or asset_id), scale, fps → a variant
    POST /v1/synthetic       JSON object (load tests)
    GET  /v1/results/{key}   a completed result, found again after a retry or a gateway restart
    POST /v1/assets          upload a video or image; GET /v1/assets/{id}
    GET  /v1/variants/{id}   a variant; GET /v1/variants/{id}/content streams it (range requests)
    GET  /health             open;  GET /v1/fleet and /metrics need an admin key
    /rate/{token}, /v1/rate/{token}/...   the crowd-study rating page and API (with a store; docs/evaluate.md)
    GET  /v1/studies/{id}/results, /studies/{id}/results   a study's results, JSON and page (admin key)
Every request names its tenant by key (`Authorization: Bearer <key>` or `X-API-Key`) and, for tasks, the
caller's region (`X-Region`); `Idempotency-Key` makes a retry return the first result instead of running
twice. docs/serving.md shows each call with curl and the SDK.

Per request: the target region is drawn by the routing table's fractions among the regions with a
believed-idle worker that host the task (`RoutingState.pick`, serve/balance.py, the object the simulator
holds too); inside it a worker is chosen by power of two choices; a worker that answers "busy" gets one
immediate second try on another worker of the same region, then the caller gets 503 + Retry-After (reason
`busy`). Under the spill policy the second try goes instead to another region with an idle worker now (home
first, then the nearest ring within `spill_budget_ms`), counted per (source, target) in
`framefleet_gateway_spills`. Nothing waits in a queue. Inter-region transit is emulated as half the round-trip
time each way.
The routing table is recomputed every period from capacity reports and measured demand (serve/traffic.py).
The media endpoints (upload, animate, enhance, content) are in serve/media_api.py; the FastAPI app, its error
handlers and the admin routes in serve/gateway_app.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from framefleet.errors import (
    Busy,
    InProgress,
    InputError,
    NotFound,
    TenantLimit,
    TooLarge,
    Unauthorized,
    UpstreamError,
    WorkerFailed,
)
from framefleet.serve.balance import MAX_REGIONS, POLICIES, RoutingState, power_of_two
from framefleet.serve.config import FleetConfig
from framefleet.serve.gateway_metrics import GatewayMetrics
from framefleet.serve.http import parse_json_object
from framefleet.serve.traffic import RoutingTable
from framefleet.store import Store

MEDIA_TASKS = ("animate", "enhance")  # typed multipart endpoints; the rest take a JSON object


@dataclass
class WorkerHandle:
    name: str
    region: str
    url: str
    inflight: int = 0
    healthy: bool = True
    served: int = 0

    def idle(self) -> bool:
        return self.healthy and self.inflight == 0


class Gateway:
    """The gateway's state and its named steps; `create_gateway_app` (serve/gateway_app.py) wires them to routes."""

    def __init__(
        self,
        config: FleetConfig,
        worker_urls: Mapping[str, Sequence[str]],
        *,
        store: Store | None = None,
        policy: str = "traffic",
        seed: int | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")
        missing = [r for r in config.region_names if not worker_urls.get(r)]
        if missing:
            raise ValueError(f"no worker URLs for regions {missing}")
        self.config, self.store, self.policy = config, store, policy
        self.workers = {
            r: [WorkerHandle(f"{r}-{i}", r, u.rstrip("/")) for i, u in enumerate(worker_urls[r])]
            for r in config.region_names
        }
        self.routing = RoutingState(config.region_names, config.rtt_ms, config.traffic, policy, config.service.mean_s)
        self._count_slots()
        self.metrics = GatewayMetrics()
        self.rng = random.Random(seed)
        self.clock = time.monotonic
        self.tenant_inflight: dict[str, int] = {}
        self.running_keys: set[tuple[str, str]] = set()  # idempotency keys with a request in flight
        self.http: httpx.AsyncClient | None = None

    # -- who is asking ------------------------------------------------------------------------------
    def tenant(self, request: Request) -> str:
        key = self._key(request)
        tenant = self.config.api_keys.get(key)
        if tenant is None:
            raise Unauthorized("missing or unknown API key; send Authorization: Bearer <key> (or X-API-Key)")
        return tenant

    def require_admin(self, request: Request) -> None:
        if self._key(request) not in self.config.admin_keys:
            raise Unauthorized("this endpoint shows fleet internals; send an admin key (admin_keys in the fleet TOML)")

    @staticmethod
    def _key(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else request.headers.get("x-api-key")
        return key or ""

    def source_region(self, request: Request) -> str:
        source = request.headers.get("x-region", "")
        if source not in self.workers:
            raise InputError(f"unknown X-Region {source!r}; send one of: {', '.join(self.config.region_names)}")
        return source

    def store_or_503(self) -> Store:
        if self.store is None:
            raise NoStore("this gateway runs without a store; media endpoints need one")
        return self.store

    @contextlib.contextmanager
    def admitted(self, tenant: str) -> Iterator[None]:
        """A tenant's share of the gateway: checked before the body is read, so a flood is shed cheaply."""
        if self.tenant_inflight.get(tenant, 0) >= self.config.gateway.tenant_max_inflight:
            self.metrics.rejections.labels("tenant_limit").inc()
            raise TenantLimit(f"tenant {tenant!r} has too many requests in flight; retry later")
        self.tenant_inflight[tenant] = self.tenant_inflight.get(tenant, 0) + 1
        try:
            yield
        finally:
            self.tenant_inflight[tenant] -= 1

    @contextlib.contextmanager
    def claimed(self, tenant: str, key: str | None) -> Iterator[None]:
        """One request per idempotency key at a time: a retry that arrives while the first attempt still
        runs gets 409 in_progress (retryable), never a second render."""
        if key is None:
            yield
            return
        if (tenant, key) in self.running_keys:
            raise InProgress(f"request {key!r} is still running; retry later for its result")
        self.running_keys.add((tenant, key))
        try:
            yield
        finally:
            self.running_keys.discard((tenant, key))

    async def read_body(self, request: Request) -> bytes:
        limit = self.config.gateway.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"body of {int(declared):,} bytes exceeds the {limit:,}-byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body exceeds the {limit:,}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def cached(self, tenant: str, key: str | None) -> dict[str, Any] | None:
        if key is None or self.store is None:
            return None
        done = await asyncio.to_thread(self.store.find_result, tenant, key)
        return {**done.result, "cached": True} if done is not None else None

    # -- routing state ------------------------------------------------------------------------------
    def _count_slots(self, region: str | None = None) -> None:
        """The routing state's counts from the worker handles: every region's after a health check, one
        region's after an in-flight change there (a request's path recounts only its own region)."""
        for r in [region] if region is not None else self.workers:
            ws = self.workers[r]
            self.routing.healthy[r] = sum(w.healthy for w in ws)
            self.routing.busy[r] = sum(w.healthy and w.inflight > 0 for w in ws)

    async def health_loop(self) -> None:
        while True:
            await asyncio.gather(*(self._check(w) for ws in self.workers.values() for w in ws))
            self._count_slots()
            await asyncio.sleep(0.5)

    async def _check(self, w: WorkerHandle) -> None:
        assert self.http is not None
        try:
            r = await self.http.get(f"{w.url}/health", timeout=0.5)
            w.healthy = r.status_code == 200
        except httpx.HTTPError:
            w.healthy = False

    async def traffic_loop(self) -> None:
        while True:
            self.publish(self.routing.update(self.clock()))
            await asyncio.sleep(self.config.traffic.period_s / 4)

    def publish(self, table: RoutingTable) -> None:
        self.metrics.table_version.set(table.version)
        for s, pairs in table.routes.items():
            for t in self.config.region_names:
                self.metrics.fraction.labels(s, t).set(dict(pairs).get(t, 0.0))

    # -- dispatch -----------------------------------------------------------------------------------
    async def dispatch(self, task: str, body: bytes, source: str, t0: float) -> tuple[dict[str, Any], WorkerHandle]:
        """Route one request and forward it; the worker's answer (200) and who served it. Raises Busy (503,
        no idle worker anywhere allowed), WorkerFailed (the worker died mid-request), UpstreamError (502,
        an answer that is not JSON), or the worker's own error (its status and reason).

        At most MAX_REGIONS tries in all: under the spill policy one worker in each of up to two regions (the
        second named by `RoutingState.second_try` once the busy answer is back), under the others two workers
        of the one region picked."""
        self.routing.demand.record(source, t0)
        allowed = self.config.regions_hosting(task)
        target, rule = self.routing.pick(source, self.rng, allowed)
        if target is None:
            raise self._busy(source, "none", "no idle worker in the regions this request may use; retry later")
        self.metrics.choices.labels(rule).inc()
        if self.policy != "spill":
            await self._transit(source, target)
            served = await self._serve_in(task, body, source, target, tries=MAX_REGIONS)
            if served is not None:
                return served
            raise self._busy(source, target, f"every worker in {target} is busy; retry later")
        visited: list[str] = []
        last = target
        while target is not None:
            visited.append(target)
            if target != source:
                self.metrics.spills.labels(source, target, rule).inc()
            await self._transit(source, target)
            served = await self._serve_in(task, body, source, target, tries=1)
            if served is not None:
                return served
            if target != source:
                await asyncio.sleep(self.config.rtt_ms[source][target] / 2000.0)  # the busy answer travels back
            last, rule = target, "second_try"
            target = self.routing.second_try(source, visited, self.rng, allowed)
            if target is not None:
                self.metrics.choices.labels(rule).inc()
        raise self._busy(source, last, f"no idle worker in {', '.join(visited)} when the request got there; retry")

    async def _transit(self, source: str, target: str) -> None:
        """The emulated trip to the target region; its slot is claimed (in transit) on the way."""
        one_way = self.config.rtt_ms[source][target] / 2000.0
        if one_way:
            self.routing.depart(target)
            try:
                await asyncio.sleep(one_way)
            finally:
                self.routing.arrive(target)

    async def _serve_in(
        self, task: str, body: bytes, source: str, target: str, *, tries: int
    ) -> tuple[dict[str, Any], WorkerHandle] | None:
        """Up to `tries` idle workers of `target`, one after the other while they answer busy (a stale belief);
        None when none was idle or all answered busy. The answer comes back after the emulated transit."""
        tried: set[str] = set()
        for attempt in range(1, tries + 1):
            idle = [w for w in self.workers[target] if w.idle() and w.name not in tried]
            worker = power_of_two(idle, lambda w: w.served, self.rng)
            if worker is None:
                return None
            if attempt == 2:
                self.metrics.second_tries.inc()
            tried.add(worker.name)
            status, answer = await self._forward(worker, task, body, source, target)
            if status == 503 and answer.get("error", {}).get("reason") == "busy":
                continue  # our belief was stale: the next try (this region's next worker, or another region)
            one_way = self.config.rtt_ms[source][target] / 2000.0
            if one_way:
                await asyncio.sleep(one_way)  # emulated transit back
            if status != 200:
                self.metrics.requests.labels(source, target, f"http_{status}").inc()
                raise WorkerAnswer(status, answer)
            worker.served += 1
            self.routing.observe_service(target, float(answer.get("service_ms") or 0) / 1000)
            return answer, worker
        return None

    async def _forward(
        self, worker: WorkerHandle, task: str, body: bytes, source: str, target: str
    ) -> tuple[int, dict[str, Any]]:
        assert self.http is not None
        worker.inflight += 1
        self._count_slots(worker.region)
        try:
            r = await self.http.post(
                f"{worker.url}/v1/{task}", content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as e:
            worker.healthy = False  # the health loop brings it back when it answers again
            self.metrics.rejections.labels("worker_failed").inc()
            self.metrics.requests.labels(source, target, "worker_failed").inc()
            raise WorkerFailed(f"worker {worker.name} failed mid-request ({type(e).__name__}); retry") from None
        finally:
            worker.inflight -= 1
            self._count_slots(worker.region)
        try:
            answer = r.json()
            if not isinstance(answer, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            self.metrics.requests.labels(source, target, "bad_upstream").inc()
            raise UpstreamError(
                f"worker {worker.name} answered HTTP {r.status_code} with a body that is not a JSON object"
            ) from None
        return r.status_code, answer

    def _busy(self, source: str, target: str, message: str) -> Busy:
        self.metrics.rejections.labels("busy").inc()
        self.metrics.requests.labels(source, target, "busy").inc()
        return Busy(message)

    async def served(
        self, task: str, answer: dict[str, Any], worker: WorkerHandle, source: str, tenant: str, key: str | None,
        t0: float, *, body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The caller's answer from a worker's (`body`: the task's fields, default {"result": ...}); recorded
        under the idempotency key, so a retry gets exactly this."""
        request_id = key or secrets.token_hex(12)
        out = {
            "request_id": request_id,
            **(body if body is not None else {"result": answer.get("result")}),
            "worker": worker.name,
            "region": worker.region,
            "source_region": source,
            "service_ms": answer.get("service_ms"),
        }
        if self.store is not None:
            await asyncio.to_thread(self.store.record_result, tenant, task, request_id, {"source": source}, out)
        self.metrics.requests.labels(source, worker.region, "served").inc()
        self.metrics.latency.labels(source).observe(self.clock() - t0)
        self.metrics.served(cross=worker.region != source)
        return out

    # -- the JSON task endpoint ---------------------------------------------------------------------
    async def run_json_task(self, task: str, request: Request) -> JSONResponse:
        t0 = self.clock()
        json_tasks = [t for t in self.config.task_names if t not in MEDIA_TASKS]
        if task not in json_tasks:
            media = "; animate and enhance take multipart uploads at /v1/animate and /v1/enhance"
            raise NotFound(f"no task {task!r}; this fleet runs {', '.join(self.config.task_names)}{media}")
        tenant = self.tenant(request)
        with self.admitted(tenant):
            source = self.source_region(request)
            body = await self.read_body(request)
            parse_json_object(body)  # the worker gets only a well-formed object (400 here otherwise)
            body = body or b"{}"  # an empty body means {}: say so to the worker rather than send it nothing
            key = request.headers.get("idempotency-key")
            # A first attempt cannot have a stored result; looking it up would put a database round trip on
            # every request's path. Retries (and callers that do not say) do look, which also covers a retry
            # that lands on a restarted gateway.
            if request.headers.get("x-framefleet-attempt", "") != "1":
                done = await self.cached(tenant, key)
                if done is not None:
                    return JSONResponse(done)
            with self.claimed(tenant, key):
                answer, worker = await self.dispatch(task, body, source, t0)
                return JSONResponse(await self.served(task, answer, worker, source, tenant, key, t0))

    # -- admin and health ---------------------------------------------------------------------------
    def fleet_view(self) -> dict[str, Any]:
        table = self.routing.manager.table
        return {
            "policy": self.policy,
            "routing_table": {"version": table.version, "routes": {s: dict(p) for s, p in table.routes.items()}}
            if table
            else None,
            "workers": [
                {"name": w.name, "region": w.region, "url": w.url, "healthy": w.healthy, "inflight": w.inflight,
                 "served": w.served}
                for ws in self.workers.values()
                for w in ws
            ],
        }  # fmt: skip


class NoStore(Busy):
    reason = "no_store"


class WorkerAnswer(Exception):
    """A worker's error answer, passed through to the caller with its status (400 for bad input, ...)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.body = status, body


__all__ = ["Gateway", "NoStore", "WorkerAnswer", "WorkerHandle"]
