"""The real tasks a serving worker hosts: the same `tasks/` functions the CLI calls, behind the worker's
one-request slot.

    tasks, warm_up = hosted_tasks(["animate", "enhance"], HostedModels(animate="student"))
    app = create_worker_app(tasks, warm_up=warm_up)

A worker process opens the store once (SQLite file by default, PostgreSQL through FRAMEFLEET_DATABASE_URL:
every worker and the gateway must reach the same one, and the same blob folder) and loads each model once;
`warm_up` loads the animate pipeline and runs one tiny render so the first real request pays no load, and
the worker's /health answers 503 until it has finished. A task runs in a thread so the worker's event loop
keeps answering health checks and "busy" rejections while the model computes.

Wire format between the gateway and a worker (internal; the gateway's public API is in gateway.py):
    POST /v1/animate  {"asset_id": "...", "tenant": "...", "params": {"prompt": "pan left", "seed": 3, ...}}
    POST /v1/enhance  {"asset_id": "...", "tenant": "...", "params": {"scale": 2, "fps": 50}}
and the task's answer is {"variant": {...}, "asset_id": ..., ...} (variant None when enhance's gate declined).
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from framefleet.errors import InputError
from framefleet.serve.service import ServiceTime
from framefleet.serve.worker import Task, synthetic_task

# what a client may set through the API; the model folder and device are the worker's choice, never the client's
ANIMATE_PARAMS = {
    "prompt": str, "sampler": str, "steps": int, "guidance_image": float, "guidance_text": float,
    "frames": int, "fps": int, "seed": int,
}  # fmt: skip
ENHANCE_PARAMS = {"scale": int, "fps": float, "gate": bool}


@dataclass(frozen=True)
class HostedModels:
    """Which model each task runs on this worker (the fleet TOML's [models] table)."""

    animate: str = "student"
    enhance: str | None = None  # None: the enhance task's default upscaler
    device: str = "auto"


def checked_params(raw: Any, allowed: Mapping[str, type], task: str) -> dict[str, Any]:
    """The client's parameters, type-checked by name: an unknown name or a wrong type is the client's
    mistake (400), never a crash inside the model."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"{task}: 'params' must be an object")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        kind = allowed.get(name)
        if kind is None:
            raise InputError(f"{task}: unknown parameter {name!r}; allowed: {', '.join(sorted(allowed))}")
        if value is None:
            continue
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            raise InputError(f"{task}: parameter {name!r} must be a {kind.__name__}, got {value!r}")
        out[name] = value
    return out


def _target(payload: dict[str, Any], task: str) -> tuple[str, str]:
    asset_id, tenant = payload.get("asset_id"), payload.get("tenant", "local")
    if not isinstance(asset_id, str) or not asset_id:
        raise InputError(f"{task}: give 'asset_id' (upload the file first: POST /v1/assets)")
    if not isinstance(tenant, str) or not tenant:
        raise InputError(f"{task}: 'tenant' must be a non-empty string")
    return asset_id, tenant


def _animate_task(open_store: Callable[[], Any], models: HostedModels) -> tuple[Task, Callable[[], None]]:
    from framefleet.tasks.animate import AnimateRequest, ModelCache, animate

    cache = ModelCache()

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        from framefleet.store.views import variant_dict

        asset_id, tenant = _target(payload, "animate")
        params = checked_params(payload.get("params"), ANIMATE_PARAMS, "animate")
        request = AnimateRequest(model=models.animate, device=models.device, **params)
        got = animate(open_store(), asset_id, request, tenant=tenant, models=cache)
        return {
            "variant": variant_dict(got.variant),
            "asset_id": got.asset.id,
            "created": got.created,
            "model": got.model,
            "sampler": got.sampler,
            "steps": got.steps,
            "denoiser_passes": got.denoiser_passes,
            "frames": got.frames,
            "fps": got.fps,
            "seconds": round(got.seconds, 4),
        }

    def warm_up() -> None:
        import numpy as np

        from framefleet.tasks.animate import resolve_device

        request = AnimateRequest(model=models.animate, device=models.device)
        pipe, _folder, _fp = cache.get(request, resolve_device(models.device))
        still = np.full((64, 64, 3), 128, np.uint8)
        pipe(still, "pan left", num_inference_steps=1, seed=0)  # first-call costs: allocator, oneDNN kernels

    async def task(payload: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(run, payload)

    return task, warm_up


def _enhance_task(open_store: Callable[[], Any], models: HostedModels) -> tuple[Task, Callable[[], None]]:
    from framefleet.tasks.enhance import EnhanceRequest, enhance

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        from framefleet.store.views import variant_dict

        asset_id, tenant = _target(payload, "enhance")
        params = checked_params(payload.get("params"), ENHANCE_PARAMS, "enhance")
        request = EnhanceRequest(model=models.enhance, device=models.device, **params)
        got = enhance(open_store(), asset_id, request, tenant=tenant)
        return {
            "variant": variant_dict(got.variant) if got.variant is not None else None,
            "asset_id": got.asset.id,
            "created": got.created,
            "gate": got.gate.to_dict(),
            "seconds": round(got.seconds, 4),
        }

    def warm_up() -> None:
        from framefleet.models.upscale import default_model
        from framefleet.tasks import segment_worker as sw

        sw._upscaler(sw.ModelSpec(model=models.enhance or default_model(), scale=2, device=models.device))

    async def task(payload: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(run, payload)

    return task, warm_up


def hosted_tasks(
    names: Sequence[str],
    models: HostedModels | None = None,
    *,
    service: ServiceTime | None = None,
    open_store: Callable[[], Any] | None = None,
    seed: int | None = None,
    threads: int | None = None,
) -> tuple[dict[str, Task], Callable[[], None]]:
    """The named tasks for one worker and the warm-up that loads their models. `threads`: CPU threads for
    the models; several workers sharing one machine's cores must split them, or each one's thread pool
    fights the others' and every request slows down many times over."""
    from framefleet.serve.config import TASK_NAMES

    models = models or HostedModels()
    unknown = [n for n in names if n not in TASK_NAMES]
    if unknown:
        raise InputError(f"unknown task {unknown[0]!r}; a worker can host {', '.join(TASK_NAMES)}")
    store: list[Any] = []

    def the_store() -> Any:  # opened on first use, once per process: the engine's pool is shared
        if not store:
            if open_store is not None:
                store.append(open_store())
            else:
                from framefleet.store import Store

                store.append(Store.open())
        return store[0]

    tasks: dict[str, Task] = {}
    warmers: list[Callable[[], None]] = []
    for name in names:
        if name == "synthetic":
            tasks[name] = synthetic_task(service or ServiceTime(), seed)
            continue
        make = _animate_task if name == "animate" else _enhance_task
        tasks[name], warm = make(the_store, models)
        warmers.append(warm)

    def warm_up() -> None:
        if warmers and threads:
            import torch

            torch.set_num_threads(threads)
        if warmers:  # a synthetic-only worker never touches the store
            the_store()
        for w in warmers:
            w()

    return tasks, warm_up


def worker_from_env() -> Any:
    """uvicorn factory: FRAMEFLEET_WORKER_TASKS (comma list), FRAMEFLEET_WORKER_MODELS (JSON), the synthetic
    service time from FRAMEFLEET_WORKER_SERVICE_*, name and region from FRAMEFLEET_WORKER_NAME/_REGION,
    FRAMEFLEET_WORKER_THREADS (CPU threads for the models; default: torch's, all cores)."""
    import json

    from framefleet.serve.lifecycle import watch_parent_from_env
    from framefleet.serve.worker import create_worker_app, service_from_env

    watch_parent_from_env()
    names = [n for n in os.environ.get("FRAMEFLEET_WORKER_TASKS", "synthetic").split(",") if n]
    models = HostedModels(**json.loads(os.environ.get("FRAMEFLEET_WORKER_MODELS", "{}")))
    threads = int(os.environ.get("FRAMEFLEET_WORKER_THREADS", "0")) or None
    tasks, warm_up = hosted_tasks(names, models, service=service_from_env(), threads=threads)
    return create_worker_app(
        tasks,
        name=os.environ.get("FRAMEFLEET_WORKER_NAME", "worker"),
        region=os.environ.get("FRAMEFLEET_WORKER_REGION", "local"),
        warm_up=warm_up,
    )


__all__ = ["ANIMATE_PARAMS", "ENHANCE_PARAMS", "HostedModels", "checked_params", "hosted_tasks", "worker_from_env"]
