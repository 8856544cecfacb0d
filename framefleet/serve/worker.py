"""A serving worker: exactly one request at a time. A request that arrives while the slot is taken is
rejected at once with 503, `Retry-After` and the machine-readable reason `busy`. It is never queued:
a queue in front of a GPU turns overload into latency for everyone, while an immediate rejection lets
the client try another worker or region now (see serve/retry.py for how clients back off).

    uvicorn --factory 'framefleet.serve.worker:synthetic_app' --port 8101   # a synthetic GPU task

The synthetic task holds its slot for a service time drawn from a configurable distribution; it stands
in for a GPU model in load tests. Real tasks (animate, enhance) plug in through the same `Task` type.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from framefleet.errors import FramefleetError
from framefleet.serve.http import error_response, from_error, install_error_handlers, json_safe, parse_json_object
from framefleet.serve.service import ServiceTime

Task = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60)


def synthetic_task(service: ServiceTime, seed: int | None = None) -> Task:
    rng = random.Random(seed)

    async def run(payload: dict[str, Any]) -> dict[str, Any]:
        hold = service.sample(rng)
        await asyncio.sleep(hold)  # the GPU is busy; nothing else may run on this worker meanwhile
        return {"echo": payload.get("echo"), "held_s": round(hold, 4)}

    return run


@dataclass
class WorkerStats:
    served: int = 0
    rejected: int = 0
    failed: int = 0
    busy: bool = False
    recent_s: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def to_dict(self) -> dict[str, Any]:
        xs = sorted(self.recent_s)

        def pct(q: float) -> float | None:
            return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2) if xs else None

        return {
            "served": self.served,
            "rejected": self.rejected,
            "failed": self.failed,
            "busy": self.busy,
            "service_ms": {
                "mean": round(sum(xs) / len(xs) * 1000, 2) if xs else None,
                "p50": pct(0.5),
                "p95": pct(0.95),
                "p99": pct(0.99),
            },
        }


def create_worker_app(
    tasks: dict[str, Task],
    *,
    name: str = "worker",
    region: str = "local",
    retry_after_s: int = 1,
    warm_up: Callable[[], None] | None = None,
) -> FastAPI:
    """A worker app hosting `tasks`. `warm_up` (load models, one tiny render) runs in a thread at start-up;
    until it has finished, /health answers 503 "warming" so no gateway routes here, and task requests get
    503 busy. A warm-up that fails leaves /health at 503 "failed" with the reason."""
    state: dict[str, Any] = {"status": "warming" if warm_up is not None else "ready", "detail": ""}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        job = asyncio.create_task(_warm()) if warm_up is not None else None
        yield
        if job is not None:
            job.cancel()

    async def _warm() -> None:
        assert warm_up is not None
        try:
            await asyncio.to_thread(warm_up)
            state["status"] = "ready"
        except Exception as e:  # reported by /health; the process stays up so the reason can be read
            state["status"], state["detail"] = "failed", f"{type(e).__name__}: {e}"

    app = FastAPI(title=f"framefleet worker {name}", docs_url=None, redoc_url=None, lifespan=lifespan)
    install_error_handlers(app)
    stats = WorkerStats()
    app.state.stats = stats
    meters = _WorkerMetrics()
    extra = {"worker": name, "region": region}

    @app.post("/v1/{task_name}")
    async def handle(task_name: str, request: Request) -> JSONResponse:
        task = tasks.get(task_name)
        if task is None:
            return error_response(
                404, "NotFound", "unknown_task", f"no task {task_name!r}; this worker runs {sorted(tasks)}", extra=extra
            )
        if stats.busy or state["status"] != "ready":  # checked and set with no await in between: atomic
            stats.rejected += 1
            meters.outcomes.labels("busy").inc()
            why = "running its one request" if stats.busy else f"not ready ({state['status']})"
            return error_response(
                503, "Busy", "busy", f"worker {name} is {why}; retry elsewhere", retry_after=retry_after_s, extra=extra
            )
        stats.busy = True
        meters.busy.set(1)
        try:
            return await _run(task, request)
        finally:
            stats.busy = False
            meters.busy.set(0)

    async def _run(task: Task, request: Request) -> JSONResponse:
        try:
            payload = parse_json_object(await request.body())
        except FramefleetError as e:
            meters.outcomes.labels("bad_request").inc()
            return from_error(e, extra=extra)
        t0 = time.perf_counter()
        try:
            result = await task(payload)
            if not json_safe(result):
                raise ValueError("the task's answer holds NaN or an infinity, which JSON cannot carry")
        except FramefleetError as e:  # the request's own fault (400/404/413/415): the worker is fine
            stats.failed += 1
            meters.outcomes.labels("rejected_input" if e.http_status < 500 else "failed").inc()
            return from_error(e, extra=extra)
        except Exception as e:  # the task failed; the worker must stay up and free its slot
            stats.failed += 1
            meters.outcomes.labels("failed").inc()
            return error_response(500, type(e).__name__, "task_failed", str(e) or type(e).__name__, extra=extra)
        elapsed = time.perf_counter() - t0
        stats.served += 1
        stats.recent_s.append(elapsed)
        meters.outcomes.labels("served").inc()
        meters.latency.observe(elapsed)
        return JSONResponse({"result": result, **extra, "service_ms": round(elapsed * 1000, 2)})

    @app.get("/health")
    async def health() -> JSONResponse:
        body = {"status": state["status"], **extra, "busy": stats.busy, "tasks": sorted(tasks), "pid": os.getpid()}
        if state["detail"]:
            body["detail"] = state["detail"]
        return JSONResponse(body, status_code=200 if state["status"] == "ready" else 503)

    @app.get("/stats")
    async def get_stats() -> dict[str, Any]:
        return {**extra, **stats.to_dict()}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(meters.registry).decode(), media_type="text/plain; version=0.0.4")

    return app


class _WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # one per app, so several workers can live in one process (tests)
        r = self.registry
        self.outcomes = Counter("framefleet_worker_requests", "Requests by outcome", ["outcome"], registry=r)
        self.busy = Gauge("framefleet_worker_busy", "1 while the slot is taken", registry=r)
        self.latency = Histogram(
            "framefleet_worker_service_seconds", "Service time of served requests", buckets=LATENCY_BUCKETS, registry=r
        )


def service_from_env() -> ServiceTime:
    """The synthetic task's service time from FRAMEFLEET_WORKER_SERVICE_MEAN_S / _SPREAD_S / _KIND."""
    return ServiceTime(
        mean_s=float(os.environ.get("FRAMEFLEET_WORKER_SERVICE_MEAN_S", "0.2")),
        spread_s=float(os.environ.get("FRAMEFLEET_WORKER_SERVICE_SPREAD_S", "0.05")),
        kind=os.environ.get("FRAMEFLEET_WORKER_SERVICE_KIND", "uniform"),
    )


def synthetic_app() -> FastAPI:
    """Factory for uvicorn: a worker with the synthetic task only, settings from FRAMEFLEET_WORKER_*
    variables (serve/hosted.py:worker_from_env hosts the real tasks)."""
    return create_worker_app(
        {"synthetic": synthetic_task(service_from_env())},
        name=os.environ.get("FRAMEFLEET_WORKER_NAME", "worker"),
        region=os.environ.get("FRAMEFLEET_WORKER_REGION", "local"),
    )
