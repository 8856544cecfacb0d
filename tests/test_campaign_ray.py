"""Campaign runs on a real Ray cluster (a head on a free port, never Redis's 6379): videos rendered by actors,
a run killed outright and resumed (only the rest is rendered, one video per recipient), a faulty actor
blocklisted with its work done elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from framefleet.campaign.dataset import load_dataset
from framefleet.campaign.health import Health
from framefleet.campaign.runner import RunConfig, run_campaign
from framefleet.campaign.work import Fault, RenderOptions
from framefleet.fleet.local import free_port
from framefleet.media.probe import probe
from framefleet.store import Store
from framefleet.store.campaigns import CampaignStore

from conftest import one_json, run_cli

pytest.importorskip("ray", reason="Ray is a dev dependency (make test installs it)")

RAY = str(Path(sys.executable).parent / "ray")
SMALL = ["--size", "320x180", "--fps", "10"]


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    port = free_port()
    assert port != 6379
    subprocess.run(
        [RAY, "start", "--head", "--port", str(port), "--include-dashboard=false", "--num-cpus", "3",
         "--object-store-memory", str(100 * 1024 * 1024), "--disable-usage-stats"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from framefleet.campaign.synth import synthesize

    out = tmp_path_factory.mktemp("campaign-ray") / "data"
    synthesize(out, 60, seed=11)
    return out


def _finished(home: Path) -> int:
    store = Store.open()
    try:
        return len(CampaignStore(store).finished("fd"))
    except Exception:  # the first run has not created its tables yet
        return 0
    finally:
        store.close()


def test_videos_render_on_ray_and_a_killed_run_resumes_with_only_the_rest(
    ray_address: str, data: Path, home: Path
) -> None:
    args = ["campaign", "run", str(data), "--campaign", "fd", "--date", "2027-02-04", "--ray-address", ray_address,
            "--workers", "2", *SMALL]  # fmt: skip
    env = {**os.environ, "FRAMEFLEET_HOME": str(home)}
    target = 12
    proc = subprocess.Popen([sys.executable, "-m", "framefleet.cli", *args, "--limit", str(target), "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while _finished(home) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
    finally:
        proc.wait(timeout=60)
    done = _finished(home)
    assert 3 <= done < target
    rerun = run_cli(*args, "--limit", str(target - done), "--json")
    summary = one_json(rerun.stdout)
    assert rerun.returncode == 0, rerun.stderr
    assert summary["already_done"] == done
    assert summary["rendered"] + sum(summary["skipped"].values()) == target - done and summary["failed"] == 0
    store = Store.open()
    try:
        cs = CampaignStore(store)
        assert len(cs.finished("fd")) == target
        videos = cs.videos("fd")
        recipients = [v.params["recipient"] for v in videos]
        assert len(recipients) == len(set(recipients)) == cs.counts("fd")["rendered"] > 0  # exactly one each
        for v in videos:
            info = probe(store.blobs.open_path(v.blob_key))
            assert info.video is not None and info.audio is not None and abs(info.duration - v.duration) < 0.15
    finally:
        store.close()
    staging = home / "tmp" / "campaign-staging" / "fd"
    assert not list(staging.glob("*.mp4")) and not list(staging.glob(".*.tmp.mp4"))  # nothing half-written left


def test_a_faulty_actor_is_blocklisted_and_its_recipients_render_elsewhere(
    ray_address: str, data: Path, tmp_path: Path
) -> None:
    import ray

    from framefleet.campaign.ray_pool import RayPool

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "blobs", tmp_path / "tmp")
    opts = RenderOptions(size=(320, 180), fps=10, per_photo_s=2.0, max_photos=5)
    pool = RayPool(str(data), str(tmp_path / "staging"), "fd", opts, address=ray_address, workers=2,
                   faults={0: Fault(fail_rate=1.0)})  # fmt: skip
    try:
        cfg = RunConfig("fd", date(2027, 2, 4), limit=5, health=Health(min_tasks=2))
        s = run_campaign(load_dataset(data), CampaignStore(store), pool, cfg)
    finally:
        pool.close()
        ray.shutdown()
        store.close()
    assert list(s.blocklisted) == ["w0"], s.blocklisted
    assert s.failed == 0 and s.rendered + sum(s.skipped.values()) == 5 and s.rendered > 0
