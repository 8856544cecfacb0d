"""The gateway's FastAPI app: `create_gateway_app` wires a `Gateway` (serve/gateway.py: its state and named
steps) to the routes listed there, with the error handlers and the health, fleet, metrics and results routes.

    uvicorn --factory framefleet.serve.gateway_app:gateway_from_env    # what `framefleet serve` starts
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest

from framefleet.errors import NotFound, WorkerFailed
from framefleet.serve.config import FleetConfig
from framefleet.serve.gateway import Gateway, WorkerAnswer
from framefleet.serve.http import from_error, install_error_handlers
from framefleet.store import Store


def create_gateway_app(
    config: FleetConfig,
    worker_urls: Mapping[str, Sequence[str]],
    *,
    store: Store | None = None,
    policy: str = "traffic",
    seed: int | None = None,
    studies: bool = True,
) -> FastAPI:
    """The gateway's app. With a store and `studies`, it also serves the crowd-study rating page and API
    (evaluate/api.py; public by rater token) and the study results (admin key)."""
    gw = Gateway(config, worker_urls, store=store, policy=policy, seed=seed)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = gw.http is None  # a client set before start (tests: a MockTransport for workers) is kept
        if own:
            n = sum(len(w) for w in gw.workers.values())
            timeout = httpx.Timeout(connect=1.0, read=600.0, write=30.0, pool=1.0)
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=4 * n)
            gw.http = httpx.AsyncClient(limits=limits, timeout=timeout)
        loops = [asyncio.create_task(gw.health_loop()), asyncio.create_task(gw.traffic_loop())]
        try:
            yield
        finally:
            for t in loops:
                t.cancel()
            if own and gw.http is not None:
                await gw.http.aclose()
                gw.http = None

    app = FastAPI(
        title="framefleet gateway",
        version="1",
        description="Animate and enhance media on a multi-region fleet of one-request workers. "
        "Every error body is {error: {type, reason, message}}.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gw
    install_error_handlers(app, retry_after_s=config.gateway.retry_after_s)

    async def on_worker_answer(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WorkerAnswer)
        return JSONResponse(exc.body, status_code=exc.status)

    async def on_worker_failed(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WorkerFailed)
        return from_error(exc, retry_after=0)  # another worker can take it now

    app.add_exception_handler(WorkerAnswer, on_worker_answer)
    app.add_exception_handler(WorkerFailed, on_worker_failed)

    from framefleet.serve.media_api import add_media_routes

    add_media_routes(app, gw)
    _add_admin_routes(app, gw)
    if studies and store is not None:
        from framefleet.evaluate.api import add_study_routes

        add_study_routes(app, store, authorize_results=gw.require_admin)
    # Registered last: routes match in order, and /v1/{task} would otherwise swallow the routes above.
    app.add_api_route(
        "/v1/{task}",
        gw.run_json_task,
        methods=["POST"],
        summary="Run a JSON task (synthetic, for load tests)",
        responses=ERROR_RESPONSES,
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    return app


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input (reason bad_input, malformed_json, unknown_region)"},
    401: {"description": "missing or unknown API key (reason bad_key)"},
    404: {"description": "unknown task, asset or variant (reason not_found, unknown_task)"},
    409: {"description": "a request with this Idempotency-Key is still running (reason in_progress); retry"},
    413: {"description": "body over the size limit (reason too_large)"},
    429: {"description": "tenant over its in-flight share (reason tenant_limit); retry after Retry-After"},
    502: {"description": "a worker answered something unusable (reason bad_upstream)"},
    503: {"description": "no idle worker (reason busy) or the worker died (reason worker_failed); retry"},
}


def _add_admin_routes(app: FastAPI, gw: Gateway) -> None:
    async def health() -> dict[str, Any]:
        return {"status": "ok", "healthy_workers": sum(w.healthy for ws in gw.workers.values() for w in ws)}

    async def fleet(request: Request) -> dict[str, Any]:
        gw.require_admin(request)
        return gw.fleet_view()

    async def prometheus(request: Request) -> PlainTextResponse:
        gw.require_admin(request)
        return PlainTextResponse(generate_latest(gw.metrics.registry).decode(), media_type="text/plain; version=0.0.4")

    async def get_result(key: str, request: Request) -> JSONResponse:
        tenant = gw.tenant(request)
        done = await gw.cached(tenant, key)
        if done is None:
            raise NotFound(f"no result {key!r} for this tenant")
        return JSONResponse(done)

    app.add_api_route("/health", health, methods=["GET"], summary="Liveness and healthy worker count")
    admin_only: dict[int | str, dict[str, Any]] = {401: ERROR_RESPONSES[401]}
    app.add_api_route(
        "/v1/fleet", fleet, methods=["GET"], summary="Workers and routing (admin key)", responses=admin_only
    )
    app.add_api_route(
        "/metrics", prometheus, methods=["GET"], summary="Prometheus metrics (admin key)", responses=admin_only,
        response_class=PlainTextResponse,
    )  # fmt: skip
    app.add_api_route("/v1/results/{key}", get_result, methods=["GET"], summary="A stored result by idempotency key",
                      responses=ERROR_RESPONSES)  # fmt: skip


def gateway_from_env() -> FastAPI:
    """uvicorn factory: FRAMEFLEET_GATEWAY_SPEC names a JSON file {fleet_toml, workers, policy, seed}."""
    import os

    from framefleet.serve.config import load_fleet
    from framefleet.serve.lifecycle import watch_parent_from_env

    watch_parent_from_env()
    spec = json.loads(Path(os.environ["FRAMEFLEET_GATEWAY_SPEC"]).read_text())
    config = load_fleet(spec["fleet_toml"])
    store = Store.open() if spec.get("store", True) else None
    return create_gateway_app(
        config, spec["workers"], store=store, policy=spec.get("policy", "traffic"), seed=spec.get("seed")
    )


__all__ = ["ERROR_RESPONSES", "create_gateway_app", "gateway_from_env"]
