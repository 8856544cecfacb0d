"""Workers as Ray actors on a Ray cluster, placed by region label; the gateway stays a local process.

This is the only module that imports ray. Each cluster node declares the region it is in with a node label
(`ray start ... --labels framefleet.io/region=us-east`); every worker actor is scheduled with the label
selector of its region, so a region's slots land on that region's machines. An actor hosts the same worker
app as a local worker process (uvicorn in a thread, one slot, never queues), bound to its node's IP, and the
gateway talks plain HTTP to it, so routing, retries and faults behave exactly as on loopback.

    ray start --head --port 6390 --labels framefleet.io/region=us-east
    ray start --address HEAD:6390 --labels framefleet.io/region=eu-west     # on a machine in eu-west
    framefleet serve --regions examples/regions-3.toml --ray-address HEAD:6390

Every node must have framefleet installed in the same Python environment as the driver.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framefleet.errors import FramefleetError, InputError
from framefleet.fleet.local import LocalFleet

REGION_LABEL = "framefleet.io/region"
NODE_ID_LABEL = "ray.io/node-id"  # Ray's default label on every node
NAMESPACE = "framefleet"
STORE_ENV = ("FRAMEFLEET_HOME", "FRAMEFLEET_DATABASE_URL")


class WorkerActor:
    """One GPU slot. Ray wraps this class with `ray.remote` at start time, so importing it needs no ray."""

    def __init__(
        self,
        name: str,
        region: str,
        mean_s: float,
        spread_s: float,
        kind: str,
        port: int = 0,
        tasks: Sequence[str] = ("synthetic",),
        models: dict[str, str] | None = None,
    ) -> None:
        import ray
        import uvicorn

        from framefleet.serve.hosted import HostedModels, hosted_tasks
        from framefleet.serve.service import ServiceTime
        from framefleet.serve.worker import create_worker_app

        service = ServiceTime(mean_s=mean_s, spread_s=spread_s, kind=kind)
        hosted, warm_up = hosted_tasks(list(tasks), HostedModels(**(models or {})), service=service)
        app = create_worker_app(hosted, name=name, region=region, warm_up=warm_up)
        # the node's IP, reachable from the gateway's machine, unlike loopback
        self.host: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        config = uvicorn.Config(app, host=self.host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread, so a thread inside the actor is safe
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{name}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} could not serve on {self.host}:{port}")
            time.sleep(0.01)
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        self.node_id = ray.get_runtime_context().get_node_id()

    def address(self) -> tuple[str, int, str]:
        return self.host, self.port, self.node_id


@dataclass
class RayWorker:
    """Goal: one actor of `region` serving on `url`; actual: `actor` is None while it is killed."""

    name: str
    region: str
    url: str
    node_id: str
    port: int
    actor: Any = None


def region_nodes(nodes: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Alive node ids by their region label, from `ray.nodes()`."""
    out: dict[str, list[str]] = {}
    for n in nodes:
        region = (n.get("Labels") or {}).get(REGION_LABEL)
        if n.get("Alive") and region:
            out.setdefault(region, []).append(str(n["NodeID"]))
    return out


def missing_regions(wanted: list[str], nodes: list[dict[str, Any]]) -> list[str]:
    """Regions with no alive node labelled for them: their actors could never be scheduled."""
    have = region_nodes(nodes)
    return [r for r in wanted if r not in have]


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds on a wrong address: ray.init itself retries an absent head for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r}: give the Ray head's host:port, e.g. 127.0.0.1:6390")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise InputError(
            f"no Ray head answers at {address} ({e}); start one with "
            f"`ray start --head --port {port} --labels {REGION_LABEL}=<region>` or fix --ray-address"
        ) from e


def connect(address: str) -> None:
    """`ray.init` to the head at `address`, failing fast and clearly when there is none."""
    import ray

    check_reachable(address)
    main = threading.current_thread() is threading.main_thread()
    # ray.init installs its own SIGTERM handler (sys.exit); the caller's (the CLI's clean shutdown) must stay
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise InputError(
            f"cannot connect to the Ray cluster at {address}: {e}. Start one with "
            f"`ray start --head --port {address.rsplit(':', 1)[-1]} --labels {REGION_LABEL}=<region>`"
        ) from e
    finally:
        if main and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


@dataclass
class RayFleet(LocalFleet):
    """LocalFleet whose workers are Ray actors on the cluster at `address` (host:port of the head)."""

    address: str = ""
    start_timeout_s: float = 120.0
    _ray: Any = field(default=None, init=False, repr=False)
    _actor_cls: Any = field(default=None, init=False, repr=False)
    _owns_connection: bool = field(default=False, init=False, repr=False)
    _run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8], init=False)  # actor names unique per fleet

    def _start_workers(self) -> None:
        import ray

        # one connection per driver process: a second fleet in it (tests) shares the first one's
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            connect(self.address)
        self._ray = ray
        missing = missing_regions(self.config.region_names, ray.nodes())  # type: ignore[no-untyped-call]
        if missing:
            raise InputError(
                f"no alive Ray node is labelled for region(s) {', '.join(missing)}; start one per region with "
                f"`ray start --address {self.address} --labels {REGION_LABEL}=<region>`"
            )
        # a synthetic slot only sleeps, so it reserves no CPU; a slot with a real model reserves the GPU it
        # computes on where the cluster has GPUs (one request at a time: one slot = one GPU), else one CPU
        self._actor_cls = ray.remote(num_cpus=0, max_restarts=0)(WorkerActor)
        pending: list[tuple[RayWorker, Any]] = []
        for region in self.config.regions:
            self.workers[region.name] = []
            for i in range(region.workers):
                w = RayWorker(f"{region.name}-{i}", region.name, url="", node_id="", port=0)
                w.actor = self._spawn_actor(w, {REGION_LABEL: region.name})
                self.workers[region.name].append(w)
                pending.append((w, w.actor.address.remote()))
        try:
            addresses = ray.get([ref for _, ref in pending], timeout=self.start_timeout_s)
        except ray.exceptions.GetTimeoutError as e:
            raise FramefleetError(
                f"Ray could not place {len(pending)} worker actors within {self.start_timeout_s:.0f} s"
            ) from e
        for (w, _), (host, port, node_id) in zip(pending, addresses, strict=True):
            w.url, w.port, w.node_id = f"http://{host}:{port}", port, node_id

    def _spawn_actor(self, w: RayWorker, selector: dict[str, str]) -> Any:
        svc = self.config.service
        tasks = next(r.tasks for r in self.config.regions if r.name == w.region)
        resources: dict[str, Any] = {}
        if set(tasks) - {"synthetic"}:
            gpus = float(self._ray.cluster_resources().get("GPU", 0))
            resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        # the store the gateway uses: a real task's worker must write its variants where the gateway reads
        env = {k: os.environ[k] for k in STORE_ENV if k in os.environ}
        if env:
            resources["runtime_env"] = {"env_vars": env}
        return self._actor_cls.options(name=f"{w.name}-{self._run_id}", label_selector=selector, **resources).remote(
            w.name, w.region, svc.mean_s, svc.spread_s, svc.kind, w.port, tasks, dict(self.config.models)
        )

    def node_labels(self) -> dict[str, dict[str, str]]:
        """Labels of the node each worker actor runs on, by worker name (to check placement)."""
        by_id = {str(n["NodeID"]): dict(n.get("Labels") or {}) for n in self._ray.nodes()}
        return {w.name: by_id.get(w.node_id, {}) for ws in self.workers.values() for w in ws}

    def kill_worker(self, name: str) -> None:
        """ray.kill: the actor's process dies with its connections, like a crashed GPU host."""
        w = self.worker(name)
        if w.actor is not None:
            self._ray.kill(w.actor, no_restart=True)
            w.actor = None

    def restart_worker(self, name: str, timeout_s: float = 60.0) -> None:
        """A new actor on the same node and port, so the gateway's address for it holds again."""
        w = self.worker(name)
        deadline = time.monotonic() + timeout_s
        while True:  # the killed actor's port is free only once its process has exited
            w.actor = self._spawn_actor(w, {REGION_LABEL: w.region, NODE_ID_LABEL: w.node_id})
            try:
                self._ray.get(w.actor.address.remote(), timeout=timeout_s)
                return
            except self._ray.exceptions.RayActorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        super().stop()  # the gateway process
        if self._ray is not None:
            for ws in self.workers.values():
                for w in ws:
                    if w.actor is not None:
                        self._ray.kill(w.actor, no_restart=True)
                        w.actor = None
            if self._owns_connection:
                self._ray.shutdown()
            self._ray = None


def run_segment_tasks(address: str, jobs: list[Any], parts: list[Any]) -> list[bytes]:
    """Enhance video segments as Ray tasks (bulk enhancement on a cluster): bytes travel through the
    object store, so the nodes need no shared filesystem. Returns the processed segments in order."""
    import ray

    from framefleet.tasks.segment_worker import process_segment_bytes

    if not ray.is_initialized():
        connect(address)
    # One CPU per task: Ray then runs as many segments at once as the cluster has cores. Ray re-runs a task
    # whose worker died (max_retries), which is safe: a segment task writes nothing outside its return value.
    task = ray.remote(num_cpus=1, max_retries=2)(process_segment_bytes)
    refs = [task.remote(job, part.read_bytes()) for job, part in zip(jobs, parts, strict=True)]
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if isinstance(e.cause, FramefleetError) else None
        if cause is not None:
            raise cause from None
        raise


@dataclass(frozen=True)
class RaySegmentRunner:
    """A `tasks.enhance.SegmentRunner` that runs the segments as Ray tasks on the cluster at `address`
    (host:port of the head). The caller (the `enhance` command) builds it; the task only calls it."""

    address: str

    def __call__(
        self,
        jobs: Sequence[Any],
        parts: Sequence[Path],
        outs: Sequence[Path],
        total: int,
        progress: Callable[[str, int, int], None] | None,
    ) -> None:
        results = run_segment_tasks(self.address, list(jobs), list(parts))
        for out, data in zip(outs, results, strict=True):
            Path(out).write_bytes(data)
        if progress is not None:
            progress("enhance", total, total)
