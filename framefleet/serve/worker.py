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
import json
import math
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

Task = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60)


@dataclass(frozen=True)
class ServiceTime:
    """Service-time distribution of the synthetic task, in seconds."""

    mean_s: float = 0.2
    spread_s: float = 0.05  # uniform: ± spread; lognormal: standard deviation
    kind: str = "uniform"  # "uniform" | "exponential" | "lognormal" | "constant"

    def sample(self, rng: random.Random) -> float:
        if self.kind == "constant":
            return self.mean_s
        if self.kind == "uniform":
            return max(0.0, rng.uniform(self.mean_s - self.spread_s, self.mean_s + self.spread_s))
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean_s)
        if self.kind == "lognormal":
            sigma2 = math.log(1 + (self.spread_s / self.mean_s) ** 2)
            return rng.lognormvariate(math.log(self.mean_s) - sigma2 / 2, math.sqrt(sigma2))
        raise ValueError(f"unknown service-time distribution {self.kind!r}")


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
    tasks: dict[str, Task], *, name: str = "worker", region: str = "local", retry_after_s: int = 1
) -> FastAPI:
    app = FastAPI(title=f"framefleet worker {name}", docs_url=None, redoc_url=None)
    stats = WorkerStats()
    registry = CollectorRegistry()  # one per app, so several workers can live in one process (tests)
    outcomes = Counter("framefleet_worker_requests", "Requests by outcome", ["outcome"], registry=registry)
    busy_gauge = Gauge("framefleet_worker_busy", "1 while the slot is taken", registry=registry)
    latency = Histogram(
        "framefleet_worker_service_seconds",
        "Service time of served requests",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    app.state.stats = stats

    def error(status: int, kind: str, reason: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {
            "error": {"type": kind, "reason": reason, "message": message},
            "worker": name,
            "region": region,
        }
        return JSONResponse(body, status_code=status, headers=headers)

    @app.post("/v1/{task_name}")
    async def handle(task_name: str, request: Request) -> JSONResponse:
        task = tasks.get(task_name)
        if task is None:
            return error(404, "NotFound", "unknown_task", f"no task {task_name!r}; this worker runs {sorted(tasks)}")
        if stats.busy:  # checked and set with no await in between: atomic on the event loop
            stats.rejected += 1
            outcomes.labels("busy").inc()
            return error(
                503,
                "Busy",
                "busy",
                f"worker {name} is running its one request; retry elsewhere",
                {"Retry-After": str(retry_after_s)},
            )
        stats.busy = True
        busy_gauge.set(1)
        try:
            try:
                raw = await request.body()
                payload = json.loads(raw) if raw else {}
                if not isinstance(payload, dict):
                    raise ValueError("the body must be a JSON object")
            except (ValueError, UnicodeDecodeError) as e:
                outcomes.labels("bad_request").inc()
                return error(400, "InputError", "malformed_json", f"request body is not valid JSON: {e}")
            t0 = time.perf_counter()
            try:
                result = await task(payload)
            except Exception as e:  # the task failed; the worker must stay up and free its slot
                stats.failed += 1
                outcomes.labels("failed").inc()
                return error(500, type(e).__name__, "task_failed", str(e) or type(e).__name__)
            elapsed = time.perf_counter() - t0
            stats.served += 1
            stats.recent_s.append(elapsed)
            outcomes.labels("served").inc()
            latency.observe(elapsed)
            return JSONResponse(
                {"result": result, "worker": name, "region": region, "service_ms": round(elapsed * 1000, 2)}
            )
        finally:
            stats.busy = False
            busy_gauge.set(0)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "worker": name, "region": region, "busy": stats.busy}

    @app.get("/stats")
    async def get_stats() -> dict[str, Any]:
        return {"worker": name, "region": region, **stats.to_dict()}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    return app


def synthetic_app() -> FastAPI:
    """Factory for uvicorn: settings from FRAMEFLEET_WORKER_* variables."""
    service = ServiceTime(
        mean_s=float(os.environ.get("FRAMEFLEET_WORKER_SERVICE_MEAN_S", "0.2")),
        spread_s=float(os.environ.get("FRAMEFLEET_WORKER_SERVICE_SPREAD_S", "0.05")),
        kind=os.environ.get("FRAMEFLEET_WORKER_SERVICE_KIND", "uniform"),
    )
    return create_worker_app(
        {"synthetic": synthetic_task(service)},
        name=os.environ.get("FRAMEFLEET_WORKER_NAME", "worker"),
        region=os.environ.get("FRAMEFLEET_WORKER_REGION", "local"),
    )
