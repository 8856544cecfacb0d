"""The gateway: authenticates, picks a region by the routing table and a worker in it, forwards, never queues.

    POST /v1/{task}          X-Region: <caller's region>, Authorization: Bearer <key>, Idempotency-Key: <id>
    GET  /v1/results/{key}   a completed result, found again after a retry or a gateway restart
    POST /v1/assets          upload a video or image (413 above the size limit); GET /v1/assets/{id}
    GET  /health  /metrics  /v1/fleet

Per request: the target region is drawn by the routing table's fractions among the regions with a
believed-idle worker (serve/balance.py); inside it a worker is chosen by power of two choices; a worker
that answers "busy" gets one immediate second try on another worker of the same region, then the caller
gets 503 + Retry-After (reason `busy`). Nothing waits in a queue. Inter-region transit is emulated as half
the round-trip time each way. The routing table is recomputed every period from capacity reports
(healthy workers / measured service time) and measured demand per source region (serve/traffic.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from framefleet.errors import FramefleetError
from framefleet.serve.balance import POLICIES, RateMeter, capacity_shares, pick_region, pick_region_global, power_of_two
from framefleet.serve.config import FleetConfig
from framefleet.serve.traffic import RegionReport, RoutingTable, TrafficManager
from framefleet.store import Store
from framefleet.store.views import asset_dict

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)


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


@dataclass
class FleetState:
    """Goal vs actual: `manager.table` is the routing in force (actual); every period the traffic loop
    computes what the reports say it should be (goal) and the manager adopts it if it changed enough."""

    config: FleetConfig
    workers: dict[str, list[WorkerHandle]]
    policy: str  # one of balance.POLICIES
    manager: TrafficManager
    demand: RateMeter = field(default_factory=lambda: RateMeter(window_s=5.0))
    service_ewma_s: dict[str, float] = field(default_factory=dict)
    tenant_inflight: dict[str, int] = field(default_factory=dict)

    incoming: dict[str, int] = field(default_factory=dict)  # requests in transit to each region

    def has_idle(self, region: str) -> bool:
        """An idle worker not already claimed by a request on its way there. Without the in-transit count,
        every request crossing regions at once would head for the same lone idle worker."""
        idle = sum(w.idle() for w in self.workers.get(region, ()))
        return idle > self.incoming.get(region, 0)

    def has_headroom(self, region: str) -> bool:
        return self.manager.table.has_headroom(region) if self.manager.table is not None else True

    def has_any_idle(self, region: str) -> bool:
        return any(w.idle() for w in self.workers.get(region, ()))

    def reports(self) -> list[RegionReport]:
        return [
            RegionReport(
                r,
                sum(w.healthy for w in ws),
                self.service_ewma_s.get(r, self.config.service.mean_s),
                sum(w.inflight > 0 for w in ws) / max(1, len(ws)),
            )
            for r, ws in self.workers.items()
        ]

    def shares(self) -> dict[str, float]:
        return capacity_shares({r: sum(w.healthy for w in ws) for r, ws in self.workers.items()})

    def fractions(self, source: str) -> dict[str, float]:
        if self.policy == "local-only" or self.manager.table is None:
            return {source: 1.0}
        return self.manager.table.fractions(source)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "framefleet_gateway_requests", "Requests by outcome", ["source", "target", "outcome"], registry=r
        )
        self.rejections = Counter("framefleet_gateway_rejections", "Rejections by reason", ["reason"], registry=r)
        self.choices = Counter(
            "framefleet_gateway_region_choices",
            "How the target region was chosen (balance.pick_region)",
            ["rule"],
            registry=r,
        )
        self.second_tries = Counter("framefleet_gateway_second_tries", "Immediate in-region second tries", registry=r)
        self.latency = Histogram(
            "framefleet_gateway_latency_seconds",
            "Latency of served requests",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cross = Counter("framefleet_gateway_served_cross_region", "Served outside the source region", registry=r)
        self.local = Counter("framefleet_gateway_served_local", "Served in the source region", registry=r)
        self.cross_share = Gauge(
            "framefleet_gateway_cross_region_share",
            "Share of served requests that crossed regions",
            registry=r,
        )
        self.table_version = Gauge("framefleet_gateway_routing_table_version", "Routing table version", registry=r)
        self.fraction = Gauge("framefleet_gateway_route_fraction", "Routing fraction", ["source", "target"], registry=r)

        self.n_cross = self.n_local = 0

    def served(self, cross: bool) -> None:
        (self.cross if cross else self.local).inc()
        if cross:
            self.n_cross += 1
        else:
            self.n_local += 1
        self.cross_share.set(self.n_cross / (self.n_cross + self.n_local))


def _error(status: int, kind: str, reason: str, message: str, *, retry_after: float | None = None) -> JSONResponse:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(0, round(retry_after)))
    return JSONResponse(
        {"error": {"type": kind, "reason": reason, "message": message}}, status_code=status, headers=headers
    )


def create_gateway_app(
    config: FleetConfig,
    worker_urls: Mapping[str, Sequence[str]],
    *,
    store: Store | None = None,
    policy: str = "traffic",
    seed: int | None = None,
) -> FastAPI:
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")
    missing = [r for r in config.region_names if not worker_urls.get(r)]
    if missing:
        raise ValueError(f"no worker URLs for regions {missing}")
    workers = {
        r: [WorkerHandle(f"{r}-{i}", r, u.rstrip("/")) for i, u in enumerate(worker_urls[r])]
        for r in config.region_names
    }
    state = FleetState(config, workers, policy, TrafficManager(config.rtt_ms, config.traffic))
    metrics = _Metrics()
    rng = random.Random(seed)
    clock = time.monotonic

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=4 * sum(len(w) for w in workers.values()))
        timeout = httpx.Timeout(connect=1.0, read=600.0, write=30.0, pool=1.0)
        app.state.http = httpx.AsyncClient(limits=limits, timeout=timeout)
        tasks = [asyncio.create_task(_health_loop(app)), asyncio.create_task(_traffic_loop())]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await app.state.http.aclose()

    app = FastAPI(title="framefleet gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.fleet = state

    async def _health_loop(app: FastAPI) -> None:
        while True:
            await asyncio.gather(*(_check(app, w) for ws in workers.values() for w in ws))
            await asyncio.sleep(0.5)

    async def _check(app: FastAPI, w: WorkerHandle) -> None:
        try:
            r = await app.state.http.get(f"{w.url}/health", timeout=0.5)
            w.healthy = r.status_code == 200
        except httpx.HTTPError:
            w.healthy = False

    async def _traffic_loop() -> None:
        while True:
            now = clock()
            table = state.manager.update(state.reports(), state.demand.rates(now), now)
            _publish(table)
            await asyncio.sleep(config.traffic.period_s / 4)

    def _publish(table: RoutingTable) -> None:
        metrics.table_version.set(table.version)
        for s, pairs in table.routes.items():
            for t in config.region_names:
                metrics.fraction.labels(s, t).set(dict(pairs).get(t, 0.0))

    def _guard(request: Request, *, need_store: bool = False) -> str | JSONResponse:
        """The caller's tenant, or the error response (401 unknown key, 503 no store) to return instead."""
        tenant = _tenant(request)
        if tenant is None:
            return _error(
                401, "Unauthorized", "bad_key", "missing or unknown API key; send Authorization: Bearer <key>"
            )
        if need_store and store is None:
            return _error(503, "Unavailable", "no_store", "this gateway has no store")
        return tenant

    def _busy(source: str, target: str, message: str) -> JSONResponse:
        metrics.rejections.labels("busy").inc()
        metrics.requests.labels(source, target, "busy").inc()
        return _error(503, "Busy", "busy", message, retry_after=config.gateway.retry_after_s)

    def _tenant(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else request.headers.get("x-api-key")
        return config.api_keys.get(key or "")

    async def _read_body(request: Request) -> bytes | JSONResponse:
        limit = config.gateway.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return _error(
                413,
                "TooLarge",
                "too_large",
                f"body of {int(declared):,} bytes exceeds the {limit:,}-byte limit",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return _error(413, "TooLarge", "too_large", f"body exceeds the {limit:,}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def run_task(task: str, request: Request) -> JSONResponse:
        t0 = clock()
        tenant = _guard(request)
        if isinstance(tenant, JSONResponse):
            return tenant
        # Checked before the body is read: a tenant flooding the gateway is shed at the lowest cost.
        if state.tenant_inflight.get(tenant, 0) >= config.gateway.tenant_max_inflight:
            metrics.rejections.labels("tenant_limit").inc()
            return _error(
                429,
                "Busy",
                "tenant_limit",
                f"tenant {tenant!r} has too many requests in flight",
                retry_after=config.gateway.retry_after_s,
            )
        state.tenant_inflight[tenant] = state.tenant_inflight.get(tenant, 0) + 1
        try:
            return await _admitted(task, request, tenant, t0)
        finally:
            state.tenant_inflight[tenant] -= 1

    async def _admitted(task: str, request: Request, tenant: str, t0: float) -> JSONResponse:
        source = request.headers.get("x-region", "")
        if source not in workers:
            return _error(
                400,
                "InputError",
                "unknown_region",
                f"unknown X-Region {source!r}; known regions: {', '.join(config.region_names)}",
            )
        body = await _read_body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            return _error(400, "InputError", "malformed_json", f"request body is not valid JSON: {e}")
        key = request.headers.get("idempotency-key")
        attempt = request.headers.get("x-framefleet-attempt", "")
        # A first attempt cannot have a stored result; looking it up would put a database round trip on
        # every request's path. Retries (and callers that do not say) do look, which also covers a retry
        # that lands on a restarted gateway.
        if key and store is not None and attempt != "1":
            done = await asyncio.to_thread(store.find_result, tenant, key)
            if done is not None:
                return JSONResponse({**done.result, "cached": True})
        state.demand.record(source, t0)
        return await _dispatch(request, task, body, source, tenant, key, t0)

    async def _dispatch(
        request: Request, task: str, body: bytes, source: str, tenant: str, key: str | None, t0: float
    ) -> JSONResponse:
        if policy == "global":
            target, rule = pick_region_global(state.shares(), state.has_idle, state.has_any_idle, rng)
        else:
            target, rule = pick_region(
                source,
                state.fractions(source),
                config.region_names,
                config.rtt_ms,
                config.traffic.ring_radii_ms,
                state.has_idle,
                state.has_any_idle,
                rng,
                spill=policy == "traffic",
                has_headroom=state.has_headroom,
            )
        if target is not None:
            metrics.choices.labels(rule).inc()
        else:
            return _busy(source, "none", "no idle worker in the regions this request may use; retry later")
        one_way = config.rtt_ms[source][target] / 2000.0
        if one_way:
            state.incoming[target] = state.incoming.get(target, 0) + 1
            try:
                await asyncio.sleep(one_way)  # emulated transit to the target region
            finally:
                state.incoming[target] -= 1
        tried: set[str] = set()
        for attempt in (1, 2):
            idle = [w for w in workers[target] if w.idle() and w.name not in tried]
            worker = power_of_two(idle, lambda w: w.served, rng)
            if worker is None:
                break
            if attempt == 2:
                metrics.second_tries.inc()
            tried.add(worker.name)
            worker.inflight += 1
            try:
                r = await request.app.state.http.post(
                    f"{worker.url}/v1/{task}", content=body, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError as e:
                worker.healthy = False  # the health loop brings it back when it answers again
                metrics.rejections.labels("worker_failed").inc()
                metrics.requests.labels(source, target, "worker_failed").inc()
                return _error(
                    503,
                    "WorkerFailed",
                    "worker_failed",
                    f"worker {worker.name} failed mid-request ({type(e).__name__}); retry",
                    retry_after=0,
                )
            finally:
                worker.inflight -= 1
            if r.status_code == 503 and r.json().get("error", {}).get("reason") == "busy":
                continue  # our belief was stale: one immediate second try in the same region
            if one_way:
                await asyncio.sleep(one_way)  # emulated transit back
            if r.status_code != 200:
                metrics.requests.labels(source, target, f"http_{r.status_code}").inc()
                return JSONResponse(r.json(), status_code=r.status_code)
            worker.served += 1
            data = r.json()
            svc = float(data.get("service_ms", 0)) / 1000
            prev = state.service_ewma_s.get(target, config.service.mean_s)
            state.service_ewma_s[target] = 0.9 * prev + 0.1 * svc if svc > 0 else prev
            request_id = key or secrets.token_hex(12)
            out = {
                "request_id": request_id,
                "result": data.get("result"),
                "worker": worker.name,
                "region": target,
                "source_region": source,
                "service_ms": data.get("service_ms"),
            }
            if store is not None:
                await asyncio.to_thread(store.record_result, tenant, task, request_id, {"source": source}, out)
            metrics.requests.labels(source, target, "served").inc()
            metrics.latency.labels(source).observe(clock() - t0)
            metrics.served(cross=target != source)
            return JSONResponse(out)
        return _busy(source, target, f"every worker in {target} is busy; retry later")

    @app.get("/v1/results/{key}")
    async def get_result(key: str, request: Request) -> JSONResponse:
        tenant = _guard(request)
        if isinstance(tenant, JSONResponse):
            return tenant
        done = await asyncio.to_thread(store.find_result, tenant, key) if store is not None else None
        if done is None:
            return _error(404, "NotFound", "not_found", f"no result {key!r} for this tenant")
        return JSONResponse({**done.result, "cached": True})

    @app.post("/v1/assets")
    async def upload(request: Request, filename: str = "upload.bin") -> JSONResponse:
        tenant = _guard(request, need_store=True)
        if isinstance(tenant, JSONResponse):
            return tenant
        assert store is not None  # _guard(need_store=True) answered 503 otherwise
        body = await _read_body(request)
        if isinstance(body, JSONResponse):
            return body
        from framefleet.config import Settings
        from framefleet.tasks.ingest import ingest

        suffix = Path(filename).suffix[:8] or ".bin"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(body)
            try:
                got = await asyncio.to_thread(ingest, path, store, settings=Settings.from_env(), tenant=tenant)
            except FramefleetError as e:
                return _error(e.http_status, type(e).__name__, "bad_input", e.message.replace(str(path), filename))
        return JSONResponse({"asset": asset_dict(got.asset), "created": got.created}, status_code=201)

    @app.get("/v1/assets/{asset_id}")
    async def get_asset(asset_id: str, request: Request) -> JSONResponse:
        tenant = _guard(request, need_store=True)
        if isinstance(tenant, JSONResponse):
            return tenant
        assert store is not None  # _guard(need_store=True) answered 503 otherwise
        try:
            asset = await asyncio.to_thread(store.get_asset, asset_id, tenant)
        except FramefleetError as e:  # another tenant's asset is indistinguishable from a missing one
            return _error(e.http_status, type(e).__name__, "not_found", f"no asset {asset_id!r}")
        return JSONResponse({"asset": asset_dict(asset)})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "healthy_workers": sum(w.healthy for ws in workers.values() for w in ws)}

    @app.get("/v1/fleet")
    async def fleet() -> dict[str, Any]:
        table = state.manager.table
        return {
            "policy": policy,
            "routing_table": {"version": table.version, "routes": {s: dict(p) for s, p in table.routes.items()}}
            if table
            else None,
            "workers": [
                {
                    "name": w.name,
                    "region": w.region,
                    "url": w.url,
                    "healthy": w.healthy,
                    "inflight": w.inflight,
                    "served": w.served,
                }
                for ws in workers.values()
                for w in ws
            ],
        }

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type="text/plain; version=0.0.4")

    # Registered last: routes match in order, and /v1/{task} would otherwise swallow /v1/assets.
    app.post("/v1/{task}")(run_task)
    return app


def gateway_from_env() -> FastAPI:
    """uvicorn factory: FRAMEFLEET_GATEWAY_SPEC names a JSON file {fleet_toml, workers, policy, seed}."""
    import os

    from framefleet.serve.config import load_fleet

    spec = json.loads(Path(os.environ["FRAMEFLEET_GATEWAY_SPEC"]).read_text())
    config = load_fleet(spec["fleet_toml"])
    store = Store.open() if spec.get("store", True) else None
    return create_gateway_app(
        config, spec["workers"], store=store, policy=spec.get("policy", "traffic"), seed=spec.get("seed")
    )
