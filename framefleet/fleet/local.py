"""A whole fleet on one machine: one worker process per GPU slot, labelled by region, and a gateway
process in front, all on loopback. Inter-region delay is emulated by the gateway from the fleet TOML.

    with LocalFleet(Path("examples/regions-3.toml")) as fleet:
        print(fleet.url)          # http://127.0.0.1:<port>
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from framefleet.errors import FramefleetError
from framefleet.serve.config import FleetConfig, load_fleet


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class _Proc:
    name: str
    port: int
    env: dict[str, str]
    args: list[str]
    popen: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


def _uvicorn(factory: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", host, "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "1"]  # fmt: skip


@dataclass
class LocalFleet:
    fleet_toml: Path  # the gateway process reads the same file
    policy: str = "traffic"
    seed: int | None = None
    store: bool = True
    host: str = "127.0.0.1"  # the gateway's bind address; workers stay on loopback
    port: int | None = None  # the gateway's port; None: a free one
    workers: dict[str, list[Any]] = field(default_factory=dict)  # region -> handles with .name and .url
    gateway: _Proc | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    config: FleetConfig = field(init=False)

    def __post_init__(self) -> None:
        self.fleet_toml = Path(self.fleet_toml).resolve()
        self.config = load_fleet(self.fleet_toml)

    @property
    def url(self) -> str:
        assert self.gateway is not None, "fleet not started"
        return self.gateway.url

    def start(self, timeout_s: float = 60.0) -> LocalFleet:
        self._tmp = tempfile.TemporaryDirectory(prefix="framefleet-fleet-")
        try:
            if self.store:
                # created and migrated once, here: the gateway and workers would otherwise race to migrate a
                # fresh database as they start
                from framefleet.store import Store

                Store.open()
            self._start_workers()
            self._start_gateway()
            self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()  # never leave half a fleet running
            raise
        return self

    def _start_workers(self) -> None:
        """One uvicorn process per slot on loopback; subclasses place workers elsewhere (Ray actors)."""
        svc = self.config.service
        # the machine's cores split among the workers that compute (a synthetic one only sleeps)
        computing = sum(r.workers for r in self.config.regions if set(r.tasks) - {"synthetic"})
        threads = max(1, (os.cpu_count() or 1) // max(1, computing))
        for region in self.config.regions:
            self.workers[region.name] = []
            for i in range(region.workers):
                port = free_port()
                env = {"FRAMEFLEET_WORKER_NAME": f"{region.name}-{i}", "FRAMEFLEET_WORKER_REGION": region.name,
                       "FRAMEFLEET_WORKER_SERVICE_MEAN_S": str(svc.mean_s),
                       "FRAMEFLEET_WORKER_SERVICE_SPREAD_S": str(svc.spread_s),
                       "FRAMEFLEET_WORKER_SERVICE_KIND": svc.kind,
                       "FRAMEFLEET_WORKER_TASKS": ",".join(region.tasks),
                       "FRAMEFLEET_WORKER_MODELS": json.dumps(dict(self.config.models)),
                       "FRAMEFLEET_WORKER_THREADS": str(threads)}  # fmt: skip
                factory = "framefleet.serve.hosted:worker_from_env"
                proc = _Proc(f"{region.name}-{i}", port, env, _uvicorn(factory, port))
                self.workers[region.name].append(proc)
                self._spawn(proc)

    def _start_gateway(self) -> None:
        assert self._tmp is not None
        spec = {
            "fleet_toml": str(self.fleet_toml),
            "workers": {r: [w.url for w in ws] for r, ws in self.workers.items()},
            "policy": self.policy, "seed": self.seed, "store": self.store,
        }  # fmt: skip
        spec_path = Path(self._tmp.name) / "gateway.json"
        spec_path.write_text(json.dumps(spec))
        port = self.port or free_port(self.host if self.host != "0.0.0.0" else "127.0.0.1")
        self.gateway = _Proc("gateway", port, {"FRAMEFLEET_GATEWAY_SPEC": str(spec_path)},
                             _uvicorn("framefleet.serve.gateway_app:gateway_from_env", port, self.host),
                             host=self.host)  # fmt: skip
        self._spawn(self.gateway)

    def _spawn(self, proc: _Proc) -> None:
        # its own session (a terminal's Ctrl-C reaches only us, and we stop it in order); it exits by itself
        # if we die without stopping it (serve/lifecycle.py)
        env = {**os.environ, **proc.env, "FRAMEFLEET_PARENT_PID": str(os.getpid())}
        proc.popen = subprocess.Popen(proc.args, env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Until every process answers /health and the gateway sees every worker healthy."""
        deadline = time.monotonic() + timeout_s
        procs = [p for ps in self.workers.values() for p in ps] + ([self.gateway] if self.gateway else [])
        total = sum(len(ps) for ps in self.workers.values())
        with httpx.Client(timeout=1.0) as http:
            while time.monotonic() < deadline:
                for p in procs:
                    popen = getattr(p, "popen", None)
                    if popen is not None and popen.poll() is not None:
                        raise FramefleetError(f"{p.name} exited with code {p.popen.returncode} while starting")
                try:
                    ok = all(http.get(f"{p.url}/health").status_code == 200 for p in procs)
                    if ok and self.gateway is not None:
                        ok = http.get(f"{self.gateway.url}/health").json()["healthy_workers"] == total
                    if ok:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise FramefleetError(f"the local fleet did not become healthy within {timeout_s:.0f} s")

    def worker(self, name: str) -> Any:
        return next(p for ps in self.workers.values() for p in ps if p.name == name)

    def kill_worker(self, name: str) -> None:
        """SIGKILL: no graceful shutdown, connections dropped mid-request (a crashed GPU host)."""
        p = self.worker(name)
        if p.popen is not None:
            p.popen.send_signal(signal.SIGKILL)
            p.popen.wait(10)

    def restart_worker(self, name: str) -> None:
        self._spawn(self.worker(name))

    def restart_gateway(self, timeout_s: float = 30.0) -> None:
        assert self.gateway is not None and self.gateway.popen is not None
        self.gateway.popen.send_signal(signal.SIGKILL)
        self.gateway.popen.wait(10)
        self._spawn(self.gateway)
        self.wait_healthy(timeout_s)

    def stop(self) -> None:
        procs = [p for ps in self.workers.values() for p in ps if isinstance(p, _Proc)]
        procs += [self.gateway] if self.gateway else []
        for p in procs:
            if p.popen is not None and p.popen.poll() is None:
                p.popen.terminate()
        for p in procs:
            if p.popen is not None:
                try:
                    p.popen.wait(5)
                except subprocess.TimeoutExpired:
                    p.popen.kill()
                    p.popen.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalFleet:
        return self if self.gateway is not None else self.start()  # `with fleet.start(timeout_s=...):` too

    def __exit__(self, *exc: Any) -> None:
        self.stop()
