"""A real local fleet (gateway + worker processes on loopback): routing, idempotent results, faults, bad
input and a tenant flood. One fleet per module: starting processes is the slow part."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from framefleet.fleet import LocalFleet
from framefleet.serve.client import AsyncFramefleetClient, FramefleetClient
from framefleet.serve.retry import RetryPolicy

from conftest import ADMIN, kill_worker_mid_request

FLEET_TOML = """
[service]
mean_ms = 800
spread_ms = 0
kind = "constant"

[[regions]]
name = "north"
workers = 2

[[regions]]
name = "south"
workers = 2

[rtt_ms]
north = { south = 40 }

[gateway]
max_body_bytes = 200000
tenant_max_inflight = 40

[api_keys]
key-a = "tenant-a"
key-b = "tenant-b"
"""

A = {"Authorization": "Bearer key-a", "X-Region": "north"}
B = {"Authorization": "Bearer key-b", "X-Region": "north"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    d = tmp_path_factory.mktemp("fleet")
    toml = d / "fleet.toml"
    toml.write_text(FLEET_TOML)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAMEFLEET_HOME", str(d / "home"))  # the gateway's store: SQLite under this folder
        f = LocalFleet(toml, seed=3).start()
        try:
            yield f
        finally:
            f.stop()


def _fleet_state(fleet: LocalFleet) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{fleet.url}/v1/fleet", headers=ADMIN, timeout=5).json()


def test_request_is_served_locally_and_result_survives_gateway_restart(fleet: LocalFleet) -> None:
    client = FramefleetClient(fleet.url, api_key="key-a", region="north")
    res = client.run("synthetic", {"echo": "hello"}, idempotency_key="req-restart-1")
    assert res.ok and res.attempts == 1 and res.body["region"] == "north"
    assert res.body["result"]["echo"] == "hello"
    fleet.restart_gateway()
    got = httpx.get(f"{fleet.url}/v1/results/req-restart-1", headers=A, timeout=5)
    assert got.status_code == 200 and got.json()["result"]["echo"] == "hello" and got.json()["cached"]
    # A retry of the same logical request after the restart finds the result instead of running again.
    t0 = time.monotonic()
    again = httpx.post(
        f"{fleet.url}/v1/synthetic",
        json={"echo": "hello"},
        timeout=10,
        headers={**A, "Idempotency-Key": "req-restart-1", "X-Framefleet-Attempt": "2"},
    )
    assert again.status_code == 200 and again.json()["cached"] and time.monotonic() - t0 < 0.5
    # Results are per tenant.
    assert httpx.get(f"{fleet.url}/v1/results/req-restart-1", headers=B, timeout=5).status_code == 404


def test_worker_killed_mid_request_fails_fast_then_retry_succeeds_and_worker_returns(fleet: LocalFleet) -> None:
    killed, resp, after_kill_s = kill_worker_mid_request(fleet, A)
    assert resp.status_code == 503 and resp.json()["error"]["reason"] == "worker_failed"
    assert after_kill_s < 1.0  # prompt: no hung connection
    # The client retries and is served by a live worker.
    res = FramefleetClient(fleet.url, api_key="key-a", region="north").run("synthetic", {})
    assert res.ok and res.body["worker"] != killed
    # The worker comes back and is used again.
    fleet.restart_worker(killed)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(w["name"] == killed and w["healthy"] for w in _fleet_state(fleet)["workers"]):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the restarted worker was never seen healthy again")

    async def two_at_once() -> set[str]:
        c = AsyncFramefleetClient(fleet.url, api_key="key-a", region="north")
        results = await asyncio.gather(c.run("synthetic", {}), c.run("synthetic", {}))
        await c.aclose()
        return {r.body.get("worker", "") for r in results if r.ok}

    assert killed in asyncio.run(two_at_once())  # both north workers busy at once: the returned one serves


def test_bad_requests(fleet: LocalFleet) -> None:
    url = f"{fleet.url}/v1/synthetic"
    r = httpx.post(url, content=b"{nope", headers={**A, "content-type": "application/json"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["reason"] == "malformed_json"
    r = httpx.post(url, json={}, headers={**A, "X-Region": "mars"}, timeout=5)
    assert r.status_code == 400 and "north" in r.json()["error"]["message"] and "south" in r.json()["error"]["message"]
    r = httpx.post(url, json={}, headers={"X-Region": "north"}, timeout=5)
    assert r.status_code == 401
    r = httpx.post(url, json={}, headers={**A, "Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 401
    r = httpx.post(f"{fleet.url}/v1/assets", content=b"x" * 300_000, headers=A, timeout=5)
    assert r.status_code == 413


def test_assets_belong_to_their_tenant(fleet: LocalFleet) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(buf, format="PNG")
    r = httpx.post(
        f"{fleet.url}/v1/assets", params={"filename": "x.png"}, content=buf.getvalue(), headers=A, timeout=10
    )
    assert r.status_code == 201, r.text
    asset_id = r.json()["asset"]["id"]
    assert httpx.get(f"{fleet.url}/v1/assets/{asset_id}", headers=A, timeout=5).status_code == 200
    other = httpx.get(f"{fleet.url}/v1/assets/{asset_id}", headers=B, timeout=5)
    assert other.status_code == 404  # another tenant's asset looks exactly like a missing one
    bad = httpx.post(
        f"{fleet.url}/v1/assets", params={"filename": "x.mp4"}, content=b"not a video", headers=A, timeout=5
    )
    assert bad.status_code == 400 and "x.mp4" in bad.json()["error"]["message"]


FLOOD = """
import asyncio, json, sys, httpx
async def main():
    url, n = sys.argv[1], int(sys.argv[2])
    headers = {"Authorization": "Bearer key-b", "X-Region": "north"}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None)) as http:
        rs = await asyncio.gather(*(http.post(url + "/v1/synthetic", json={}, headers=headers) for _ in range(n)),
                                  return_exceptions=True)
    print(json.dumps([r.status_code if isinstance(r, httpx.Response) else -1 for r in rs]))
asyncio.run(main())
"""


def test_tenant_flood_does_not_take_the_gateway_down(fleet: LocalFleet) -> None:
    """One tenant floods the gateway from another process; a monitor keeps probing /health and /metrics."""
    import json
    import subprocess
    import sys

    monitor = httpx.Client(base_url=fleet.url, timeout=5, headers=ADMIN)  # a monitor keeps its client (and connection)
    monitor.get("/health")
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, fleet.url, "300"], stdout=subprocess.PIPE, text=True)
    probes: list[float] = []
    try:
        time.sleep(0.3)  # the flood is under way
        for path in ("/health", "/metrics") * 4:
            t0 = time.monotonic()
            r = monitor.get(path)
            probes.append(time.monotonic() - t0)
            assert r.status_code == 200
            time.sleep(0.05)
        out, _ = flood.communicate(timeout=60)
    finally:
        flood.kill()
        monitor.close()
    codes = json.loads(out)
    assert max(probes) < 0.1, probes  # health and metrics keep answering within 100 ms
    assert set(codes) <= {200, 429, 503} and codes.count(200) >= 1
    assert codes.count(429) + codes.count(503) >= 250  # rejected at once, never queued
    # Another tenant is still served.
    client = FramefleetClient(fleet.url, api_key="key-a", region="south", policy=RetryPolicy(max_attempts=5))
    assert client.run("synthetic", {}).ok


def test_metrics_report_routing_and_outcomes(fleet: LocalFleet) -> None:
    text = httpx.get(f"{fleet.url}/metrics", headers=ADMIN, timeout=5).text
    for name in (
        "framefleet_gateway_requests_total",
        "framefleet_gateway_rejections_total",
        "framefleet_gateway_latency_seconds_bucket",
        "framefleet_gateway_cross_region_share",
        "framefleet_gateway_routing_table_version",
        "framefleet_gateway_second_tries_total",
    ):
        assert name in text
    worker = fleet.workers["north"][0]
    assert "framefleet_worker_requests_total" in httpx.get(f"{worker.url}/metrics", timeout=5).text


def test_loadtest_cli_against_running_fleet(fleet: LocalFleet, tmp_path: Path) -> None:
    from conftest import one_json, run_cli

    png = tmp_path / "lt.png"
    toml = fleet.fleet_toml
    r = run_cli(
        "loadtest",
        "--regions",
        str(toml),
        "--url",
        fleet.url,
        "--api-key",
        "key-a",
        "--rate",
        "3",
        "--duration",
        "2",
        "--json",
        "--plot",
        str(png),
    )
    assert r.returncode == 0, r.stderr
    rep = one_json(r.stdout)
    for key in (
        "requests",
        "succeeded",
        "success_rate",
        "goodput_rps",
        "capacity_rps",
        "attempts_per_request",
        "latency_ms",
        "cross_region_share",
    ):
        assert key in rep
    assert rep["requests"] > 0 and png.stat().st_size > 10_000
    r = run_cli("loadtest", "--regions", str(toml), "--url", fleet.url, "--rate", "1", "--policy", "local-only")
    assert r.returncode == 2 and "--policy" in r.stderr
    r = run_cli("loadtest", "--regions", str(toml), "--url", fleet.url, "--rate", "1", "--skew", "mars=2")
    assert r.returncode == 2 and "mars" in r.stderr
