"""`framefleet serve` with the real tasks: a photograph animated and a real clip enhanced through the gateway
and the SDK, a worker killed mid-render, idempotency, bad input, and SIGTERM stopping the whole fleet.

One fleet for the module: two regions (2 + 1 workers) hosting animate and enhance with our student, each
worker process loading its models before /health says ready."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from framefleet.fleet.local import free_port
from framefleet.media import probe, sample_path
from framefleet.serve.client import FramefleetClient
from framefleet.serve.retry import RetryPolicy
from framefleet.store import Store

from conftest import ADMIN

FLEET = """
[service]
mean_ms = 100
spread_ms = 0

[[regions]]
name = "north"
workers = 2
tasks = ["animate", "enhance", "synthetic"]

[[regions]]
name = "south"
workers = 1
tasks = ["animate", "enhance"]

[rtt_ms]
north = { south = 20 }

[api_keys]
key-a = "tenant-a"
key-b = "tenant-b"
"""


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        raise TimeoutError(f"framefleet serve printed nothing within {timeout_s:.0f} s")
    return proc.stdout.readline()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("serve")
    (d / "fleet.toml").write_text(FLEET)
    port = free_port()
    before = set(Path(tempfile.gettempdir()).glob("framefleet-fleet-*"))
    env = {**os.environ, "FRAMEFLEET_HOME": str(d / "home")}
    env.pop("FRAMEFLEET_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "framefleet.cli", "serve", "--regions", str(d / "fleet.toml"), "--port", str(port),
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = _read_line(proc, 240)
        info = json.loads(line)
        assert info.get("gateway") == f"http://127.0.0.1:{port}", (line, proc.stderr.read() if proc.poll() else "")
        yield {"url": info["gateway"], "workers": info["workers"], "home": d / "home", "proc": proc, "before": before}
    finally:
        if proc.poll() is None:
            proc.terminate()  # a clean stop of the whole fleet; a test that failed early leaves it running
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def client(served: dict[str, Any], region: str = "north", key: str = "key-a", attempts: int = 3) -> FramefleetClient:
    return FramefleetClient(served["url"], api_key=key, region=region, policy=RetryPolicy(max_attempts=attempts))


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2
    import skimage.data

    path = tmp_path_factory.mktemp("photo") / "astronaut.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def test_animate_a_photograph_through_the_fleet(served: dict[str, Any], photo: Path, tmp_path: Path) -> None:
    c = client(served)
    got = c.animate(photo, prompt="pan left", seed=1, frames=8, fps=8, out=tmp_path / "clip.mp4")
    assert got.ok, got.body
    assert got.output is not None and got.variant is not None
    info = probe(got.output, verify=True)  # decodes every frame: playable
    assert info.kind == "video" and info.video is not None
    assert (info.width, info.height, info.video.frames) == (64, 64, 8)
    assert got.body["denoiser_passes"] == 8 and got.body["model"] == "student"
    h = {"Authorization": "Bearer key-a"}
    asset = httpx.get(f"{served['url']}/v1/assets/{got.body['asset_id']}", headers=h).json()["asset"]
    assert got.variant["id"] in [v["id"] for v in asset["variants"]]
    # the content endpoint: whole, a range, and never another tenant's
    url = f"{served['url']}{got.body['content_url']}"
    assert httpx.get(url, headers=h).content == got.output.read_bytes()
    part = httpx.get(url, headers={**h, "Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == got.output.read_bytes()[10:110]
    assert httpx.get(url, headers={"Authorization": "Bearer key-b"}).status_code == 404


def test_the_same_idempotency_key_never_renders_twice(served: dict[str, Any], photo: Path) -> None:
    c = client(served)
    first = c.animate(photo, prompt="zoom in", seed=11, idempotency_key="render-11")
    served_before = sum(w["served"] for w in httpx.get(f"{served['url']}/v1/fleet", headers=ADMIN).json()["workers"])
    again = c.animate(photo, prompt="zoom in", seed=11, idempotency_key="render-11")
    after = sum(w["served"] for w in httpx.get(f"{served['url']}/v1/fleet", headers=ADMIN).json()["workers"])
    assert first.ok and again.ok and again.body.get("cached") is True
    assert again.variant == first.variant and after == served_before


def test_enhance_a_real_clip_through_the_fleet(served: dict[str, Any], tmp_path: Path) -> None:
    clip = tmp_path / "carphone-24.mp4"
    with av.open(str(sample_path("carphone"))) as src, av.open(str(clip), "w") as dst:
        s = dst.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 176, 144, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == 24:
                break
            dst.mux(s.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")))
        dst.mux(s.encode(None))
    got = client(served, region="south").enhance(clip, scale=2, gate=False, out=tmp_path / "big.mp4")
    assert got.ok, got.body
    assert got.output is not None and got.variant is not None
    info = probe(got.output, verify=True)
    assert info.video is not None and (info.width, info.height) == (352, 288) and info.video.frames == 24


def test_bad_input_through_the_api_is_a_clear_4xx_and_stores_nothing(
    served: dict[str, Any], photo: Path, tmp_path: Path
) -> None:
    url, h = served["url"], {"Authorization": "Bearer key-b", "X-Region": "north"}
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n" * 10)
    cases = [
        ({"image": ("notes.jpg", text.read_bytes())}, {}, (400, 415)),
        ({"image": ("p.jpg", photo.read_bytes())}, {"frames": "0"}, (400,)),
        ({"image": ("p.jpg", photo.read_bytes())}, {"steps": "many"}, (400,)),
        ({"image": ("p.jpg", photo.read_bytes())}, {"colour": "red"}, (400,)),
        ({"image": ("p.jpg", photo.read_bytes())}, {"asset_id": "abc"}, (400,)),
        ({}, {}, (400,)),
    ]
    for files, data, statuses in cases:
        r = httpx.post(f"{url}/v1/animate", headers=h, files=files or None, data=data, timeout=60)
        assert r.status_code in statuses, (data, r.text)
        assert r.json()["error"]["message"]
    clip = sample_path("carphone").read_bytes()
    r = httpx.post(f"{url}/v1/animate", headers=h, files={"image": ("c.mp4", clip)}, timeout=60)
    assert r.status_code == 400 and "video" in r.json()["error"]["message"]
    # every case was refused before the upload was stored: tenant b has no asset at all
    home: Path = served["home"]
    store = Store(f"sqlite:///{home / 'framefleet.db'}", home / "blobs", home / "tmp")
    try:
        assert store.list_assets(tenant="tenant-b") == []
    finally:
        store.close()


def test_a_worker_killed_mid_animate_is_retried_elsewhere_and_one_variant_exists(
    served: dict[str, Any], photo: Path
) -> None:
    url = served["url"]
    box: dict[str, Any] = {}

    def render() -> None:  # ~150 student steps: seconds of work, time to kill its worker
        box["got"] = client(served, attempts=4).animate(photo, prompt="tilt up", seed=77, steps=150)

    th = threading.Thread(target=render)
    th.start()
    busy: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not busy and time.monotonic() < deadline:
        busy = [w for w in httpx.get(f"{url}/v1/fleet", headers=ADMIN).json()["workers"] if w["inflight"]]
        time.sleep(0.05)
    assert busy, "the render never reached a worker"
    time.sleep(0.5)  # mid-render
    pid = httpx.get(f"{busy[0]['url']}/health").json()["pid"]
    os.kill(pid, signal.SIGKILL)
    th.join(180)
    got = box["got"]
    assert got.ok, got.body
    assert got.attempts >= 2 and got.body["worker"] != busy[0]["name"]
    asset = httpx.get(f"{url}/v1/assets/{got.body['asset_id']}", headers={"Authorization": "Bearer key-a"}).json()
    same = [v for v in asset["asset"]["variants"] if v.get("params", {}).get("steps") == 150]
    assert len(same) == 1 and same[0]["id"] == got.variant["id"]  # type: ignore[index]


def test_sigterm_stops_the_whole_fleet(served: dict[str, Any]) -> None:
    """Last in the module: SIGTERM to `framefleet serve` stops the gateway and every worker, and removes its
    temporary folder, as Ctrl-C does."""
    proc: subprocess.Popen[str] = served["proc"]
    urls = [served["url"], *(u for us in served["workers"].values() for u in us)]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    for u in urls:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{u}/health", timeout=2)
    left = set(Path(tempfile.gettempdir()).glob("framefleet-fleet-*")) - served["before"]
    assert not left, left


def test_a_fleet_whose_serve_process_is_killed_outright_goes_away(tmp_path: Path) -> None:
    """SIGKILL runs no handler: the gateway and workers notice their parent is gone and stop themselves."""
    (tmp_path / "fleet.toml").write_text('[[regions]]\nname = "solo"\nworkers = 1\n')
    env = {**os.environ, "FRAMEFLEET_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "framefleet.cli", "serve", "--regions", str(tmp_path / "fleet.toml"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        info = json.loads(_read_line(proc, 120))
        urls = [info["gateway"], *(u for us in info["workers"].values() for u in us)]
        assert all(httpx.get(f"{u}/health", timeout=2).status_code == 200 for u in urls)
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 15
    alive = urls
    while alive and time.monotonic() < deadline:
        time.sleep(0.25)
        alive = [u for u in alive if _answers(u)]
    assert not alive, f"still answering after the parent was killed: {alive}"


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=1)
        return True
    except httpx.HTTPError:
        return False
