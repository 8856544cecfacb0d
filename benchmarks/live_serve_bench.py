"""The live server end to end on loopback (part 4 of live_benchmarks.py; runs alone too):

    .venv/bin/python benchmarks/live_serve_bench.py        # ~3 minutes

A real `framefleet live serve` process; clients (websockets, asyncio) stream JPEG frames of the held-out
carphone clip (quality 85) and read the results.
- closed loop: one session sends its next frame when the previous result is back: the round trip (frame
  sent → its result received) p50/p99 and the fps it sustains, at 256² and 384²;
- 25 fps: k sessions each send a frame every 40 ms whether or not results are back (a camera); per session
  the fps of results, the round trip of the frames that were processed, and the frames the server dropped
  (newest frame wins). A machine "holds" k sessions when every one gets ≥ 24 fps of results;
- the next one: with --max-sessions at that k, one more connection is refused at once (busy, 1013).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import websockets

ROOT = Path(__file__).resolve().parent.parent
FPS = 25.0
SECONDS = float(os.environ.get("LIVE_BENCH_SECONDS", "12"))  # per measurement


def _jpegs(size: int) -> list[bytes]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from live_benchmarks import carphone

    return [
        bytes(cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])[1])
        for f in carphone(size, 100)
    ]


class Server:
    """`framefleet live serve` in its own process, on a free port."""

    def __init__(self, model: Path, max_sessions: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [str(ROOT / ".venv/bin/framefleet"), "live", "serve", "--model", str(model), "--port", str(self.port)]
        cmd += ["--max-sessions", str(max_sessions), "--threads", "2"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(
                    f"live serve did not start: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            time.sleep(0.2)
        self.ws = f"ws://127.0.0.1:{self.port}/v1/live?prompt=pencil+sketch"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def _reader(ws: Any, sent: dict[int, float], got: list[tuple[int, float]], last: dict[str, Any]) -> None:
    async for msg in ws:
        if isinstance(msg, str):
            m = json.loads(msg)
            if m.get("type") == "frame":
                got.append((m["seq"], time.perf_counter() - sent[m["seq"]]))
                last.update(m)


async def closed_loop(url: str, jpegs: list[bytes], seconds: float = SECONDS) -> dict[str, Any]:
    rtt = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()  # the opening prompt message
        t_end = time.perf_counter() + seconds
        i = 0
        t_start = time.perf_counter()
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            await ws.send(jpegs[i % len(jpegs)])
            while True:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    break
            rtt.append((time.perf_counter() - t0) * 1e3)
            i += 1
        wall = time.perf_counter() - t_start
    a = np.asarray(rtt[5:])
    return {
        "fps": round(len(rtt) / wall, 1),
        "rtt_ms_p50": round(float(np.median(a)), 1),
        "rtt_ms_p99": round(float(np.percentile(a, 99)), 1),
        "frames": len(rtt),
    }


async def paced(url: str, jpegs: list[bytes], seconds: float = SECONDS) -> dict[str, Any]:
    sent: dict[int, float] = {}
    got: list[tuple[int, float]] = []
    last: dict[str, Any] = {}
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()
        reader = asyncio.create_task(_reader(ws, sent, got, last))
        t0 = time.perf_counter()
        n = int(seconds * FPS)
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / FPS - time.perf_counter()))
            sent[i] = time.perf_counter()
            await ws.send(jpegs[i % len(jpegs)])
        await asyncio.sleep(0.5)
        reader.cancel()
    rtt = np.asarray([r for _, r in got[5:]]) * 1e3
    return {
        "sent": n,
        "results": len(got),
        "fps": round(len(got) / seconds, 1),
        "dropped": int(last.get("dropped", 0)),
        "rtt_ms_p50": round(float(np.median(rtt)), 1) if len(rtt) else None,
        "rtt_ms_p99": round(float(np.percentile(rtt, 99)), 1) if len(rtt) else None,
    }


async def refused(url: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    async with websockets.connect(url) as ws:
        first = json.loads(await ws.recv())
        try:
            await ws.recv()
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
    return {"message": first, "close_code": code, "ms": round((time.perf_counter() - t0) * 1e3, 1)}


async def sessions_at(url: str, jpegs: list[bytes], k: int) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(paced(url, jpegs) for _ in range(k))))


def bench_serve(model: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"closed_loop": {}, "sessions_25fps": {}}
    server = Server(model, max_sessions=8)
    try:
        for size in (256, 384):
            jpegs = _jpegs(size)
            res["closed_loop"][f"{size}"] = asyncio.run(closed_loop(server.ws, jpegs))
            held = 0
            for k in (1, 2, 3, 4):
                runs = asyncio.run(sessions_at(server.ws, jpegs, k))
                res["sessions_25fps"][f"{size}x{k}"] = runs
                if min(r["fps"] for r in runs) >= 24.0:
                    held = k
                else:
                    break
            res["sessions_25fps"][f"{size}_held"] = held
    finally:
        server.close()
    k = max(1, res["sessions_25fps"]["256_held"])
    server = Server(model, max_sessions=k)
    try:

        async def full() -> dict[str, Any]:
            holders = [await websockets.connect(server.ws) for _ in range(k)]
            try:
                return await refused(server.ws)
            finally:
                for h in holders:
                    await h.close()

        res["next_session"] = {"max_sessions": k, **asyncio.run(full())}
    finally:
        server.close()
    return res


if __name__ == "__main__":
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "framefleet/models/live/weights"
    print(json.dumps(bench_serve(model), indent=1))
