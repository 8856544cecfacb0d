"""A study's results over HTTP (JSON and the HTML page, on `study serve`'s app and on the gateway), and as one file
(`study results --html`): every section, inline SVG plots, no external asset, escaped text, 404 for an unknown
study, a page (not a 500) for a study without votes."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from test_gateway import ADMIN, CONFIG, URLS, ok_worker

from framefleet.config import Settings
from framefleet.evaluate.api import create_study_app
from framefleet.evaluate.report import Report, render_html
from framefleet.evaluate.simulate import SimConfig, make_raters, simulate_votes
from framefleet.evaluate.stats import analyse
from framefleet.evaluate.study import CreatedStudy, StudySpec, create_study
from framefleet.serve.gateway_app import create_gateway_app
from framefleet.store import Store
from framefleet.store.studies import StudyStore

from conftest import one_json, run_cli, write_clip
from study_fixtures import study_asset

SECTIONS = ("mos", "preferences", "bradley-terry", "metrics", "gain", "screening")
TRUTH = {"original": 2.0, "bicubic": 3.0, "espcn": 4.3, "trap": 1.0}  # planted quality per variant label


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("results") / "clip.mp4", frames=12, size=(96, 64))


def _study(store: Store, clip: Path, settings: Settings) -> CreatedStudy:
    asset = study_asset(store, clip, settings)
    spec = StudySpec(name="sr page-1", assets=[asset], variants=["original", "espcn", "bicubic"], gold=2,
                     traps=1, raters_per_item=6, seed=2, measure=False)  # fmt: skip
    return create_study(store, spec, settings)


def _answer(store: Store, client: TestClient, created: CreatedStudy) -> None:
    """Every rater answers every item through the rating API, as a simulated rater (one spammer among six)."""
    stimuli = created.study.config["stimuli"]
    quality = {vid: TRUTH[s["variant"]] for vid, s in stimuli.items()}
    config = SimConfig(n_raters=len(created.raters), spammer_share=0.17, always5_share=0.0, noise=(0.2, 0.4))
    items = {i.id: i for i in StudyStore(store).items(created.study.id)}
    for rater, sim in zip(created.raters, make_raters(quality, {}, config, seed=4), strict=True):
        while not (nxt := client.get(f"/v1/rate/{rater.token}/next").json())["done"]:
            it = items[nxt["item"]]
            answer = sim.answer(it.left_variant_id, it.right_variant_id, it.kind, it.expected)
            r = client.post(f"/v1/rate/{rater.token}/votes", json={"item": it.id, **answer})
            assert r.status_code == 201, r.text


def _self_contained(page: str) -> None:
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower() and "<link" not in page.lower() and "<img" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "an external asset"
    assert "@import" not in page and "url(http" not in page


def test_results_json_and_page_before_and_after_votes(store: Store, clip: Path, settings: Settings) -> None:
    created = _study(store, clip, settings)
    client = TestClient(create_study_app(store))
    sid = created.study.id
    empty = client.get(f"/v1/studies/{sid}/results")
    assert empty.status_code == 200, empty.text
    body = empty.json()
    assert set(body) == {"study", "name", "created_at", "ready", "n_votes", "expected_votes", "message"}
    assert (body["study"], body["ready"], body["n_votes"], body["expected_votes"]) == (sid, False, 0, 6 * 6)
    assert body["name"] == "sr page-1" and "no votes yet" in body["message"]
    page = client.get(f"/studies/{sid}/results")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "no votes yet" in page.text and 'id="mos"' not in page.text
    assert "Study results — sr page-1" in page.text

    _answer(store, client, created)
    got = client.get(f"/v1/studies/{sid}/results")
    assert got.status_code == 200 and got.json()["ready"] is True
    res = got.json()
    assert res["n_votes"] == 36 and res["expected_votes"] == 36 and res["name"] == "sr page-1"
    mos = {v["variant"]: v for v in res["variants"]}
    assert mos["espcn"]["mos"] > mos["bicubic"]["mos"] > mos["original"]["mos"]
    assert mos["espcn"]["bt_ci_low"] > mos["original"]["bt_ci_high"]
    assert res["rejected_raters"], "the spammer is screened out"
    assert res["gains"] and res["gains"][0]["gate_threshold"] == 40.0

    page = client.get(f"/studies/{sid}/results")
    assert page.status_code == 200, page.text
    text = page.text
    _self_contained(text)
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text, anchor
    assert text.count("<svg") >= 5  # MOS, Bradley–Terry, preferences, a metric, gain: inline, server-made
    for phrase in ("95 % CI", "wins", "PLCC", "SROCC", "KROCC", "suggested gate threshold",
                   "current gate threshold (min_quality)", "screened out", "log-strength"):  # fmt: skip
        assert phrase in text, phrase
    for rater in res["rejected_raters"]:
        assert rater in text
    reason = next(r for r in res["raters"] if not r["kept"])["reasons"][0]
    assert reason.split(":")[0] in text
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "ids collide between the inline SVGs"
    assert client.get(f"/studies/{sid}/results").text == text  # the cached analysis: the same page


def test_an_unknown_study_is_404_in_json_and_html(store: Store) -> None:
    client = TestClient(create_study_app(store))
    r = client.get("/v1/studies/nope/results")
    error = r.json()["error"]
    assert r.status_code == 404 and error["reason"] == "not_found" and "nope" in error["message"]
    page = client.get("/studies/<b>nope<b>/results")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Unknown study" in page.text and "&lt;b&gt;nope&lt;b&gt;" in page.text and "<b>nope" not in page.text


def test_votes_that_cannot_be_analysed_give_a_page_that_says_why(sqlite_store: Store, clip: Path) -> None:
    """Every rater fails the gold items (all answer 'left'): nobody is kept, and the page says so (200)."""
    created = _study(sqlite_store, clip, Settings.from_env())
    client = TestClient(create_study_app(sqlite_store))
    for rater in created.raters[:2]:
        while not (nxt := client.get(f"/v1/rate/{rater.token}/next").json())["done"]:
            vote = {"item": nxt["item"], "left_score": 4, "right_score": 2, "preference": "left"}
            assert client.post(f"/v1/rate/{rater.token}/votes", json=vote).status_code == 201
    r = client.get(f"/v1/studies/{created.study.id}/results")
    assert r.status_code == 200 and r.json()["ready"] is False and "cannot analyse yet" in r.json()["message"]
    page = client.get(f"/studies/{created.study.id}/results")
    assert page.status_code == 200 and "cannot analyse yet" in page.text


def test_every_text_is_escaped_in_the_page() -> None:
    evil = "<img src=x onerror=alert(1)>"
    cfg = SimConfig(n_assets=4, n_raters=8, variants=("original", evil), gain_below={evil: 0.5},
                    gain_above={evil: 0.5}, artifacts={evil: ("blur", 0.3)})  # fmt: skip
    votes, truth = simulate_votes(cfg, seed=1)
    res = analyse(votes, truth.stimuli, n_boot=100, gate_threshold=40.0)
    page = render_html(Report("s<1>", "<script>alert(2)</script>", None, len(votes), len(votes), res))
    _self_contained(page)
    assert evil not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # in the tables and the SVG text alike
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page


def test_cli_writes_the_same_page_to_one_file(sqlite_store: Store, clip: Path, tmp_path: Path) -> None:
    created = _study(sqlite_store, clip, Settings.from_env())
    dst = tmp_path / "out" / "results.html"
    missing = run_cli("study", "results", created.study.id, "--html", str(dst), "--json")
    assert missing.returncode == 2 and "--html" in missing.stderr and not dst.parent.exists()
    no_votes = run_cli("study", "results", created.study.id, "--html", str(tmp_path / "r.html"), "--json")
    assert no_votes.returncode == 2 and "no votes yet" in no_votes.stderr and not (tmp_path / "r.html").exists()
    _answer(sqlite_store, TestClient(create_study_app(sqlite_store)), created)
    dst.parent.mkdir()
    r = run_cli("study", "results", created.study.id, "--html", str(dst), "--json", "--n-boot", "200")
    assert r.returncode == 0, r.stderr
    got = one_json(r.stdout)
    assert got["html"] == str(dst) and got["ready"] is True and got["variants"][0]["bt_ci_low"] is not None
    text = dst.read_text()
    _self_contained(text)
    assert all(f'<section id="{a}">' in text for a in SECTIONS)
    assert sorted(p.name for p in dst.parent.iterdir()) == ["results.html"]  # no temporary file left
    assert run_cli("study", "results", "nope", "--html", str(dst)).returncode == 2


# --- the gateway ----------------------------------------------------------------------------------------------------


def _gateway_call(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    app.state.gateway.http = httpx.AsyncClient(transport=httpx.MockTransport(ok_worker))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go())


def test_the_gateway_serves_the_rating_api_and_results_to_admins(sqlite_store: Store, clip: Path) -> None:
    created = _study(sqlite_store, clip, Settings.from_env())
    app = create_gateway_app(CONFIG, URLS, store=sqlite_store, seed=1)
    token, sid = created.raters[0].token, created.study.id
    nxt = _gateway_call(app, "GET", f"/v1/rate/{token}/next")  # public: the token is the credential
    assert nxt.status_code == 200 and nxt.json()["progress"] == {"answered": 0, "total": 6}
    assert _gateway_call(app, "GET", f"/rate/{token}").status_code == 200
    vote = {"item": nxt.json()["item"], "left_score": 4, "right_score": 2, "preference": "left"}
    assert _gateway_call(app, "POST", f"/v1/rate/{token}/votes", json=vote).status_code == 201
    assert _gateway_call(app, "GET", "/v1/rate/nope/next").json()["error"]["reason"] == "unknown_token"
    # the results unblind the study: an admin key, not a tenant key and not no key
    for headers in ({}, {"Authorization": "Bearer key-a"}):
        r = _gateway_call(app, "GET", f"/v1/studies/{sid}/results", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["reason"] == "bad_key"
        assert _gateway_call(app, "GET", f"/studies/{sid}/results", headers=headers).status_code == 401
    r = _gateway_call(app, "GET", f"/v1/studies/{sid}/results", headers=ADMIN)
    assert r.status_code == 200 and r.json()["n_votes"] == 1
    page = _gateway_call(app, "GET", f"/studies/{sid}/results", headers=ADMIN)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert _gateway_call(app, "GET", "/v1/studies/nope/results", headers=ADMIN).status_code == 404
    schema = _gateway_call(app, "GET", "/openapi.json").json()["paths"]
    assert "401" in schema["/v1/studies/{study_id}/results"]["get"]["responses"]
    for off in (create_gateway_app(CONFIG, URLS, seed=1),
                create_gateway_app(CONFIG, URLS, store=sqlite_store, seed=1, studies=False)):  # fmt: skip
        assert _gateway_call(off, "GET", f"/v1/rate/{token}/next").status_code == 404
        assert _gateway_call(off, "GET", f"/rate/{token}").status_code == 404
