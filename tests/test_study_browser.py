"""The rating page in a real browser (Debian's Chromium driven by Playwright): open a rater link, play (both
players move together), seek, rate both sides, prefer, flag, submit; reload and resume at the next item; the
votes are in the database.

Chromium comes from the system (/usr/bin/chromium), never from `playwright install`; when it is missing the test
installs it with apt-get if it runs as root, and is skipped with the reason otherwise (as tests/test_live_browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from framefleet.config import Settings
from framefleet.evaluate.api import create_study_app
from framefleet.evaluate.study import StudySpec, create_study
from framefleet.store import Store
from framefleet.store.studies import StudyStore

from conftest import chromium, write_clip
from live_fixtures import LiveServer
from study_fixtures import study_asset


def test_rate_submit_reload_resume(sqlite_store: Store, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'framefleet[dev]' (playwright)")
    settings = Settings.from_env()
    clip = write_clip(tmp_path / "clip.mp4", frames=50, size=(160, 96))  # 2 s: long enough to see it play
    asset = study_asset(sqlite_store, clip, settings)
    spec = StudySpec(name="browser", assets=[asset], variants=["original", "espcn"], gold=1, traps=0,
                     raters_per_item=1, measure=False)  # fmt: skip
    token = create_study(sqlite_store, spec, settings).raters[0].token
    ss = StudyStore(sqlite_store)
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"]
    with LiveServer(create_study_app(sqlite_store)) as srv, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium()), headless=True, args=args)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{srv.url}/rate/{token}")
            page.wait_for_function("window.rateState && window.rateState.item !== null", timeout=30_000)
            first = page.evaluate("window.rateState.item")
            assert page.text_content("#progress") == "Item 1 of 2 (0 rated)"
            page.wait_for_function("document.getElementById('left').readyState >= 2 && "
                                   "document.getElementById('right').readyState >= 2", timeout=30_000)  # fmt: skip
            assert page.is_disabled("#submit")
            page.click("#play")
            page.wait_for_function("document.getElementById('left').currentTime > 0.3", timeout=30_000)
            times = page.evaluate("[left.currentTime, right.currentTime, left.paused, right.paused]")
            assert times[2] is False and times[3] is False and abs(times[0] - times[1]) < 0.3, times
            page.click("#play")  # pause: both stop
            page.wait_for_function("left.paused && right.paused")
            page.evaluate("const s = document.getElementById('seek'); s.value = '500'; "
                          "s.dispatchEvent(new Event('input'))")  # fmt: skip
            page.wait_for_function("Math.abs(left.currentTime - right.currentTime) < 0.05 && left.currentTime > 0.5")
            page.check("#left-score input[value='4']")
            page.check("#right-score input[value='2']")
            page.check("#preference input[value='left']")
            page.check("#artifacts input[value='blur']")
            page.check("#artifacts input[value='flicker']")
            page.click("#submit")
            page.wait_for_function(f"window.rateState.item !== null && window.rateState.item !== '{first}'")
            assert page.text_content("#progress") == "Item 2 of 2 (1 rated)"
            page.reload()  # resumes at the unanswered item
            page.wait_for_function("window.rateState && window.rateState.item !== null")
            second = page.evaluate("window.rateState.item")
            assert second != first and page.text_content("#progress") == "Item 2 of 2 (1 rated)"
            page.click("#play")
            page.check("#left-score input[value='3']")
            page.check("#right-score input[value='3']")
            page.check("#preference input[value='same']")
            page.wait_for_function("!document.getElementById('submit').disabled")
            page.click("#submit")
            page.wait_for_function("window.rateState.done === true")
            assert page.is_visible("#done") and not page.is_visible("#rating")
            assert problems == []
        finally:
            browser.close()
    rows = {r.item.id: r.vote for r in ss.votes(ss.rater(token).study_id)}
    assert set(rows) == {first, second}
    v = rows[first]
    assert (v.left_score, v.right_score, v.preference, v.artifacts) == (4, 2, "left", ["blur", "flicker"])
    v = rows[second]
    assert (v.left_score, v.right_score, v.preference, v.artifacts) == (3, 3, "same", [])
    assert ss.rater(token).answered == 2
