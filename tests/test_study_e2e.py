"""End to end: a study over the real enhanced variants (bicubic and our ESPCN, ×2) of two real sample clips (their
first 20 frames), answered through the HTTP API by simulated raters with known truth (honest raters, spammers and
an "always 5" rater), then analysed by `framefleet study results --json`."""

from __future__ import annotations

import itertools
from pathlib import Path

from fastapi.testclient import TestClient

from framefleet.config import Settings
from framefleet.evaluate.api import create_study_app
from framefleet.evaluate.simulate import SimConfig, make_raters
from framefleet.evaluate.study import StudySpec, create_study
from framefleet.media import encode_frames, iter_frames, sample_path
from framefleet.store import Store
from framefleet.store.studies import StudyStore
from framefleet.tasks.enhance import EnhanceRequest, enhance
from framefleet.tasks.ingest import ingest

from conftest import one_json, run_cli

TRUTH = {"original": 2.0, "bicubic": 3.0, "espcn": 4.2, "trap": 1.0}  # planted quality per variant label


def test_real_study_answered_by_simulated_raters(sqlite_store: Store, tmp_path: Path) -> None:
    settings = Settings.from_env()
    assets = []
    for name in ("carphone", "bikes"):
        clip = tmp_path / f"{name}.mp4"
        encode_frames(list(itertools.islice(iter_frames(sample_path(name)), 20)), clip, fps=25)
        asset = ingest(clip, sqlite_store, settings=settings).asset
        for model in ("bicubic", "espcn"):
            enhance(sqlite_store, asset.id, EnhanceRequest(model=model, gate=False), settings=settings)
        assets.append(asset.id)
    spec = StudySpec(name="sr e2e", assets=assets, variants=["original", "bicubic", "espcn"], gold=3, traps=2,
                     raters_per_item=10, seed=1)  # fmt: skip
    created = create_study(sqlite_store, spec, settings)
    stimuli = created.study.config["stimuli"]
    assert all("noref" in s["metrics"] for s in stimuli.values())
    assert all(
        {"psnr", "ssim", "vmaf"} <= set(s["metrics"]) for s in stimuli.values() if s["variant"] in ("bicubic", "espcn")
    )
    quality = {vid: TRUTH[s["variant"]] for vid, s in stimuli.items()}
    config = SimConfig(n_raters=10, spammer_share=0.2, always5_share=0.1, noise=(0.2, 0.4), bias_sd=0.2)
    sims = make_raters(quality, {}, config, seed=3)
    items = {i.id: i for i in StudyStore(sqlite_store).items(created.study.id)}  # the truth the simulator needs
    client = TestClient(create_study_app(sqlite_store))
    kinds = {}
    for rater, sim in zip(created.raters, sims, strict=True):
        kinds[rater.id] = sim.kind
        while not (nxt := client.get(f"/v1/rate/{rater.token}/next").json())["done"]:
            it = items[nxt["item"]]
            answer = sim.answer(it.left_variant_id, it.right_variant_id, it.kind, it.expected)
            r = client.post(f"/v1/rate/{rater.token}/votes", json={"item": it.id, **answer})
            assert r.status_code == 201, r.text
    r = run_cli("study", "results", created.study.id, "--json", "--n-boot", "200", "--plot", str(tmp_path / "plots"))
    assert r.returncode == 0, r.stderr
    res = one_json(r.stdout)
    mos = {v["variant"]: v["mos"] for v in res["variants"]}
    assert mos["espcn"] > mos["bicubic"] > mos["original"], mos
    spammers = {rid for rid, k in kinds.items() if k == "spammer"}
    assert spammers <= set(res["rejected_raters"]), (spammers, res["rejected_raters"])
    assert res["settings"]["gate_threshold"] == 40.0
    assert {c["metric"] for c in res["correlations"]} >= {"noref"}
    assert res.get("plots") and all(Path(p).is_file() for p in res["plots"])
