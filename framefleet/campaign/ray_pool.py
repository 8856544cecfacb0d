"""The campaign's workers as Ray actors: the only campaign module that imports ray.

Without an address, a local Ray instance is started for the run (`ray.init()` picks free ports, so the Redis
on 6379 is no obstacle) and shut down after it; with `--ray-address host:port` the runner joins that cluster
and leaves it running. Each actor reserves `threads` CPUs and loads the dataset once, from a folder every
node can read (a shared file system on a real cluster); videos go to a staging folder on the same storage.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from framefleet.campaign.work import Fault, RecipientRenderer, RenderOptions
from framefleet.errors import InputError


class _Actor:
    """Ray wraps this with `ray.remote` at start time, so importing it needs no ray."""

    def __init__(self, dataset_dir: str, staging_dir: str, campaign: str, options: RenderOptions,
                 worker: str, fault: Fault | None) -> None:  # fmt: skip
        self.renderer = RecipientRenderer(dataset_dir, staging_dir, campaign, options, worker, fault)

    def render(self, recipient: str) -> dict[str, Any]:
        return self.renderer(recipient)

    def ready(self) -> str:
        return self.renderer.worker


def _ray() -> Any:
    """The ray module, imported on first use (and typed loosely: ray's own annotations are partial)."""
    import ray

    return ray


def _init(address: str | None) -> bool:
    """Connect or start Ray; True when this process started it (and must shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None  # ray.init replaces the CLI's handler
    try:
        if address:
            from framefleet.fleet.ray_fleet import check_reachable

            check_reachable(address)
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            return False
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        return True
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise InputError(f"cannot start or reach Ray ({address or 'local'}): {e}") from e
    finally:
        if main and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


class RayPool:
    def __init__(
        self,
        dataset_dir: str,
        staging_dir: str,
        campaign: str,
        options: RenderOptions,
        *,
        address: str | None = None,
        workers: int | None = None,
        faults: Mapping[int, Fault] | None = None,
    ) -> None:
        ray = _ray()
        self._owns = _init(address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = workers or max(1, cpus // max(1, options.threads))
        remote = ray.remote(num_cpus=min(options.threads, cpus))(_Actor)
        faults = faults or {}
        self._actors: dict[str, Any] = {}
        pending = []
        for i in range(n):
            name = f"w{i}"
            actor = remote.remote(dataset_dir, staging_dir, campaign, options, name, faults.get(i))
            pending.append(actor.ready.remote())
            self._actors[name] = actor
        ray.get(pending)  # the dataset is loaded everywhere before the first render is timed
        self.workers = list(self._actors)

    def submit(self, worker: str, recipient: str) -> Hashable:
        ref: Hashable = self._actors[worker].render.remote(recipient)
        return ref

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[tuple[Hashable, dict[str, Any] | str]]:
        ray = _ray()
        refs = list(handles)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[tuple[Hashable, dict[str, Any] | str]] = []
        for ref in ready:
            try:
                out.append((ref, ray.get(ref)))
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as e:
                out.append((ref, str(e).strip().splitlines()[-1][:300]))
            except ray.exceptions.TaskCancelledError:
                out.append((ref, "cancelled"))
        return out

    def cancel(self, handle: Hashable) -> None:
        ray = _ray()
        # already finished, or not cancellable (a running actor task): its result is ignored by the runner
        with contextlib.suppress(ValueError, TypeError, ray.exceptions.RayError):
            ray.cancel(handle)  # type: ignore[arg-type]

    def retire(self, worker: str) -> None:
        ray = _ray()
        actor = self._actors.pop(worker, None)
        if actor is not None:
            ray.kill(actor)

    def close(self) -> None:
        ray = _ray()
        for worker in list(self._actors):
            self.retire(worker)
        if self._owns:
            ray.shutdown()
