"""Ray cluster mode against a real local Ray cluster: a head labelled `north` and a second node labelled
`south`, both on this machine, on a port other than 6379 (Redis holds it). Workers are actors placed by
region label; the gateway, routing, retries and faults are the same code as the local fleet."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from framefleet.fleet.local import free_port
from framefleet.fleet.ray_fleet import REGION_LABEL, RayFleet
from framefleet.media import iter_timed_frames
from framefleet.serve.client import FramefleetClient

from conftest import ADMIN, kill_worker_mid_request, one_json, run_cli, write_clip

RAY = str(Path(sys.executable).parent / "ray")

FLEET_TOML = """
[service]
mean_ms = 300
spread_ms = 0
kind = "constant"

[[regions]]
name = "north"
workers = 2

[[regions]]
name = "south"
workers = 1

[rtt_ms]
north = { south = 20 }

[traffic]
period_s = 0.5

[api_keys]
key-a = "tenant-a"
"""

A = {"Authorization": "Bearer key-a", "X-Region": "north"}


def _ray(*args: str) -> None:
    subprocess.run([RAY, *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    port = free_port()
    assert port != 6379
    small = ["--num-cpus", "1", "--object-store-memory", str(80 * 1024 * 1024), "--disable-usage-stats"]
    _ray(
        "start", "--head", "--port", str(port), "--include-dashboard=false", "--labels", f"{REGION_LABEL}=north", *small
    )
    address = f"127.0.0.1:{port}"
    try:
        _ray("start", "--address", address, "--labels", f"{REGION_LABEL}=south", *small)
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def fleet(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayFleet]:
    d = tmp_path_factory.mktemp("rayfleet")
    toml = d / "fleet.toml"
    toml.write_text(FLEET_TOML)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAMEFLEET_HOME", str(d / "home"))  # the gateway's store
        f = RayFleet(toml, seed=5, address=ray_address).start()
        try:
            yield f
        finally:
            f.stop()


def test_actors_are_placed_on_their_regions_nodes_and_serve_locally(fleet: RayFleet) -> None:
    labels = fleet.node_labels()
    assert set(labels) == {"north-0", "north-1", "south-0"}
    for name, node_labels in labels.items():
        assert node_labels.get(REGION_LABEL) == name.split("-")[0], (name, node_labels)
    for region in ("north", "south"):
        res = FramefleetClient(fleet.url, api_key="key-a", region=region).run("synthetic", {})
        assert res.ok, res.body
        assert res.body["region"] == region  # the source region had headroom: no spill
    state = httpx.get(f"{fleet.url}/v1/fleet", headers=ADMIN, timeout=5).json()
    assert {w["url"] for w in state["workers"]} == {w.url for ws in fleet.workers.values() for w in ws}


def test_killed_actor_fails_fast_then_retry_succeeds_and_restarted_actor_serves(fleet: RayFleet) -> None:
    killed, resp, after_kill_s = kill_worker_mid_request(fleet, A)
    assert resp.status_code == 503 and resp.json()["error"]["reason"] == "worker_failed", resp.text
    assert after_kill_s < 2.0
    res = FramefleetClient(fleet.url, api_key="key-a", region="north").run("synthetic", {})
    assert res.ok and res.body["worker"] != killed

    fleet.restart_worker(killed)
    assert fleet.node_labels()[killed][REGION_LABEL] == "north"  # back on its region's node
    served_by: set[str] = set()
    client = FramefleetClient(fleet.url, api_key="key-a", region="north")
    deadline = time.monotonic() + 20
    while killed not in served_by and time.monotonic() < deadline:
        # two at once take both north slots, so once the gateway sees the actor healthy it must serve one
        pair = [threading.Thread(target=lambda: served_by.add(client.run("synthetic", {}).body.get("worker", "")))
                for _ in range(2)]  # fmt: skip
        for t in pair:
            t.start()
        for t in pair:
            t.join()
    assert killed in served_by, "the restarted actor never served again"


def test_loadtest_cli_on_ray(ray_address: str, tmp_path: Path) -> None:
    toml = tmp_path / "fleet.toml"
    toml.write_text(FLEET_TOML)
    env = {"FRAMEFLEET_HOME": str(tmp_path / "home")}
    proc = run_cli(
        "loadtest", "--regions", str(toml), "--ray-address", ray_address, "--rate", "4", "--duration", "3",
        "--api-key", "key-a", "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = one_json(proc.stdout)
    assert report["requests"] >= 4 and report["success_rate"] >= 0.95, report


def test_region_without_a_labelled_node_is_a_clear_error(ray_address: str, tmp_path: Path) -> None:
    toml = tmp_path / "fleet.toml"
    toml.write_text(FLEET_TOML.replace('name = "south"', 'name = "east"').replace("south = 20", "east = 20"))
    proc = run_cli("serve", "--regions", str(toml), "--ray-address", ray_address, "--json")
    assert proc.returncode == 2, proc.stderr
    msg = one_json(proc.stdout)["error"]["message"]
    assert "east" in msg and f"--labels {REGION_LABEL}=" in msg


def test_unreachable_ray_head_fails_fast(tmp_path: Path) -> None:
    toml = tmp_path / "fleet.toml"
    toml.write_text(FLEET_TOML)
    t0 = time.monotonic()
    proc = run_cli("serve", "--regions", str(toml), "--ray-address", f"127.0.0.1:{free_port()}", "--json")
    assert proc.returncode == 2 and time.monotonic() - t0 < 30
    assert "no Ray head answers" in one_json(proc.stdout)["error"]["message"]


def test_enhance_segments_as_ray_tasks_match_sequential(ray_address: str, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=40, audio=True)
    env = {"FRAMEFLEET_HOME": str(tmp_path / "home")}
    seq, par = tmp_path / "seq.mp4", tmp_path / "ray.mp4"
    proc = run_cli("enhance", str(clip), "--no-gate", "-o", str(seq), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "enhance", str(clip), "--no-gate", "--force", "--segments", "3", "--ray-address", ray_address,
        "-o", str(par), "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [f.pts for f in iter_timed_frames(par)] == [f.pts for f in iter_timed_frames(seq)]
    assert one_json(proc.stdout)["variants"][0]["frame_count"] == 40


def test_ray_actors_host_the_real_animate_task(ray_address: str, tmp_path: Path) -> None:
    """A worker actor with the real task: it loads the student in the actor, is healthy only once warm, and
    writes its variant into the store the gateway reads (the driver's FRAMEFLEET_HOME reaches the actor)."""
    import cv2
    import skimage.data

    photo = tmp_path / "coffee.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR))
    toml = tmp_path / "fleet.toml"
    toml.write_text(
        FLEET_TOML.replace("workers = 2", 'workers = 1\ntasks = ["animate"]').replace(
            'name = "south"\nworkers = 1', 'name = "south"\nworkers = 1\ntasks = ["synthetic"]'
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAMEFLEET_HOME", str(tmp_path / "home"))
        with RayFleet(toml, seed=2, address=ray_address).start(timeout_s=180) as fleet:
            got = FramefleetClient(fleet.url, api_key="key-a", region="south").animate(
                photo, prompt="zoom in", seed=4, out=tmp_path / "clip.mp4"
            )
            assert got.ok, got.body
            assert got.body["region"] == "north" and got.body["worker"] == "north-0"  # the only animate slot
            assert got.variant is not None and got.variant["frame_count"] == 8
            assert got.output is not None and got.output.stat().st_size > 0
