"""`framefleet animate` end to end (task, store, CLI) on a tiny model folder: the variant and its producer,
idempotency, every bad input the issue names (clear message, exit 2, nothing stored), and the image kinds
that must be handled (CMYK, 16-bit, greyscale, alpha, EXIF rotation)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from framefleet.config import Settings
from framefleet.errors import InputError
from framefleet.media.image import load_image
from framefleet.media.samples import sample_path
from framefleet.store import Store
from framefleet.tasks.animate import AnimateRequest, ModelCache, animate

from animate_fixtures import save_tiny_framefleet
from conftest import count_rows, files_under, one_json, png_header_only, run_cli


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_framefleet(tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def models() -> ModelCache:
    return ModelCache()


def photo(path: Path, size: tuple[int, int] = (80, 60), mode: str = "RGB", **save: object) -> Path:
    rng = np.random.default_rng(0)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    arr[: size[1] // 3] = (200, 30, 30)  # red top: shows which way is up
    Image.fromarray(arr).convert(mode).save(path, **save)
    return path


def request(model: Path, **kw: object) -> AnimateRequest:
    return AnimateRequest(model=str(model), steps=2, **kw)  # type: ignore[arg-type]


def test_animate_stores_a_variant_and_reuses_it(
    store: Store, settings: Settings, model: Path, models: ModelCache, tmp_path: Path
) -> None:
    img = photo(tmp_path / "p.png")
    out = tmp_path / "out.mp4"
    r = animate(
        store, str(img), request(model, prompt="pan left", seed=1), settings=settings, models=models, output=out
    )
    assert r.created and out.is_file() and r.frames == 4 and r.denoiser_passes == 2 * 3
    v = r.variant
    assert v.parent_id is not None and v.width == 32 and v.frame_count == 4 and v.status == "ready"
    assert v.producer_model == "animate-tiny" and v.params["seed"] == 1 and v.params["prompt"] == "pan left"
    again = animate(store, str(img), request(model, prompt="pan left", seed=1), settings=settings, models=models)
    assert not again.created and again.variant.id == v.id  # no second render
    other = animate(store, r.asset.id, request(model, prompt="pan left", seed=2), settings=settings, models=models)
    assert other.created and other.variant.id != v.id and other.asset.id == r.asset.id
    assert count_rows(store)["variants"] == 3  # original + two renders


def test_cli_json_and_bad_inputs(model: Path, tmp_path: Path) -> None:
    env = {"FRAMEFLEET_HOME": str(tmp_path / "home"), "FRAMEFLEET_DATABASE_URL": ""}
    img = photo(tmp_path / "ok.jpg")
    out = tmp_path / "v.mp4"
    r = run_cli(
        "animate",
        str(img),
        "--prompt",
        "zoom in",
        "--model",
        str(model),
        "--steps",
        "2",
        "-o",
        str(out),
        "--json",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    j = one_json(r.stdout)
    for key in ("output", "variant", "model", "sampler", "steps", "denoiser_passes", "seconds", "frames", "fps"):
        assert key in j
    assert j["output"] == str(out) and j["steps"] == 2 and j["denoiser_passes"] == 6 and j["frames"] == 4
    assert j["variant"]["id"] and out.stat().st_size > 0

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    jpeg = img.read_bytes()
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(jpeg[: len(jpeg) // 2])
    bomb = png_header_only(tmp_path / "bomb.png", 60000, 60000)
    fresh = tmp_path / "img2.png"
    photo(fresh, (70, 50))
    broken = tmp_path / "broken-model"
    import shutil

    shutil.copytree(model, broken)
    shutil.rmtree(broken / "unet")
    home2 = tmp_path / "home2"
    env2 = {"FRAMEFLEET_HOME": str(home2), "FRAMEFLEET_DATABASE_URL": ""}
    cases = [
        ([str(text)], "not a video or image"),
        ([str(trunc)], "corrupt or truncated"),
        ([str(bomb)], "decompression-bomb"),
        ([str(fresh), "--frames", "0"], "--frames 0"),
        ([str(fresh), "--frames", "5"], "makes 4 frames"),
        ([str(fresh), "--steps", "0"], "--steps 0"),
        ([str(fresh), "--sampler", "heun"], "unknown sampler"),
        ([str(fresh), "--model", str(broken)], "component 'unet'"),
        ([str(fresh), "--model", str(tmp_path / "nope")], "neither a shipped model"),
        ([str(fresh), "-o", str(tmp_path / "x.gif")], "ending in .mp4"),
        (
            [str(sample_path("bikes"))],
            "is a video; animate takes a still image (PNG, JPEG, WebP). To enhance a video, run `framefleet enhance",
        ),
    ]

    def attempt(args: list[str]) -> Any:
        extra = [] if "--model" in args else ["--model", str(model)]
        return run_cli("animate", *args, *extra, "--json", env=env2)

    # Two at a time: each run is mostly the interpreter importing torch and diffusers, one core each. The store is
    # made first, so that two processes never build the same fresh database at once.
    Store.open(_settings(home2)).close()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(attempt, [args for args, _ in cases]))
    for (args, message), r in zip(cases, runs, strict=True):
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert one_json(r.stdout)["error"]["message"]
    leftover = [p for p in files_under(home2) if p.suffix not in (".db", ".db-wal", ".db-shm")]
    assert leftover == []  # no blob, no scratch file
    s = Store.open(_settings(home2))
    try:
        assert count_rows(s) == {"assets": 0, "variants": 0, "jobs": 0}
    finally:
        s.close()


def _settings(home: Path) -> Settings:
    import os

    old = os.environ.get("FRAMEFLEET_HOME")
    os.environ["FRAMEFLEET_HOME"] = str(home)
    try:
        return Settings.from_env()
    finally:
        if old is None:
            del os.environ["FRAMEFLEET_HOME"]
        else:
            os.environ["FRAMEFLEET_HOME"] = old


def _exif_rotated(path: Path) -> Path:
    """A landscape JPEG whose EXIF says 'rotate 90° clockwise to display' (orientation 6)."""
    img = Image.new("RGB", (80, 40), (20, 20, 200))
    img.paste((200, 30, 30), (0, 0, 20, 40))  # red on the left of the stored pixels = the top once shown
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, exif=exif)
    return path


def test_image_kinds_are_converted_and_upright(tmp_path: Path) -> None:
    cmyk = photo(tmp_path / "cmyk.jpg", mode="CMYK")
    grey = photo(tmp_path / "grey.png", mode="L")
    alpha = tmp_path / "alpha.png"
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:20, :, 3] = 255  # bottom half fully transparent (its hidden colour is red too)
    Image.fromarray(rgba, "RGBA").save(alpha)
    deep = tmp_path / "deep.png"
    import cv2

    cv2.imwrite(str(deep), np.tile(np.linspace(0, 65535, 64), (32, 1)).astype(np.uint16))  # dark left, bright right
    for p in (cmyk, grey, alpha, deep):
        a = load_image(p)
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3, p
    assert tuple(load_image(alpha)[39, 0]) == (255, 255, 255)  # transparency over white, not the hidden red
    d = load_image(deep)
    assert d[:, 0].max() < 10 and d[:, -1].min() > 245 and 100 < d[16, 32, 0] < 160  # scaled, not clipped
    rot = load_image(_exif_rotated(tmp_path / "rot.jpg"))
    assert rot.shape[:2] == (80, 40)  # shown upright: portrait
    assert rot[2, 20, 0] > 150 and rot[-3, 20, 2] > 150  # red on top


@pytest.mark.parametrize("kind", ["cmyk", "grey", "alpha", "rot"])
def test_odd_images_animate(kind: str, home: Path, model: Path, models: ModelCache, tmp_path: Path) -> None:
    settings = Settings.from_env()
    store = Store.open(settings)
    try:
        path = {
            "cmyk": lambda: photo(tmp_path / "c.jpg", mode="CMYK"),
            "grey": lambda: photo(tmp_path / "g.png", mode="L"),
            "alpha": lambda: photo(tmp_path / "a.png", mode="LA"),
            "rot": lambda: _exif_rotated(tmp_path / "r.jpg"),
        }[kind]()
        r = animate(store, str(path), request(model), settings=settings, models=models)
        assert r.created and r.variant.frame_count == 4
    finally:
        store.close()


def test_request_checks_before_anything() -> None:
    for bad, message in [
        ({"steps": 0}, "--steps 0"),
        ({"frames": 0}, "--frames 0"),
        ({"sampler": "x"}, "unknown sampler"),
        ({"fps": 0}, "--fps 0"),
        ({"guidance_text": -1.0}, "guidance"),
    ]:
        with pytest.raises(InputError, match=message):
            AnimateRequest(**bad).check()  # type: ignore[arg-type]


def test_sigterm_mid_render_cleans_up_like_ctrl_c(model: Path, tmp_path: Path) -> None:
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    home = tmp_path / "home"
    env = {**os.environ, "FRAMEFLEET_HOME": str(home), "FRAMEFLEET_DATABASE_URL": ""}
    img = photo(tmp_path / "p.png")
    proc = subprocess.Popen(
        [sys.executable, "-m", "framefleet.cli", "animate", str(img), "--model", str(model), "--steps", "1000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = home / "framefleet.db"
    started = False
    deadline = time.monotonic() + 120
    while not started and time.monotonic() < deadline:  # the render has started once its job row exists
        time.sleep(0.2)
        try:  # read-only peek: opening a Store here would race the CLI's own migrations
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                started = c.execute("select count(*) from jobs").fetchone()[0] > 0
        except sqlite3.Error:
            continue
    assert started, "the render never started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err
    with sqlite3.connect(db) as c:
        status, error = c.execute("select status, error from jobs").fetchone()
    assert status == "failed" and error == "Terminated"  # not left "running"
    assert count_rows(Store.open(_settings(home)))["variants"] == 1  # the original only: no animated variant
    assert files_under(_settings(home).tmp_dir) == []  # no scratch file left
