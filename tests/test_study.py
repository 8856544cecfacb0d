"""Studies: the pure design, the tables (SQLite and PostgreSQL), the rating API with every bad input the issue
names, and the `framefleet study` commands."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from framefleet.config import Settings
from framefleet.errors import InputError, NotFound
from framefleet.evaluate.api import create_study_app
from framefleet.evaluate.design import PlannedItem, plan_items, plan_sessions
from framefleet.evaluate.study import CreatedStudy, StudySpec, create_study
from framefleet.store import Store
from framefleet.store.studies import StudyStore

from conftest import files_under, one_json, run_cli, write_clip
from study_fixtures import STUDY_TABLES, good_vote, study_asset, table_counts


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("study") / "clip.mp4", frames=12, size=(96, 64))


@pytest.fixture
def asset_id(store: Store, clip: Path, settings: Settings) -> str:
    return study_asset(store, clip, settings)


@pytest.fixture
def created(store: Store, asset_id: str, settings: Settings) -> CreatedStudy:
    spec = StudySpec(name="sr test", assets=[asset_id], variants=["original", "espcn", "bicubic"], gold=1, traps=1,
                     raters_per_item=2)  # fmt: skip
    return create_study(store, spec, settings)


# --- design (pure) ------------------------------------------------------------------------------------------------


def test_pairs_all_and_adjacent_with_random_sides() -> None:
    ids = {"a": ["o", "e", "b", "l"]}
    assert len([i for i in plan_items(ids, pairs="all") if i.kind == "pair"]) == 6
    adjacent = plan_items(ids, pairs="adjacent")
    assert {frozenset((i.left, i.right)) for i in adjacent} == {frozenset(p) for p in (("o", "e"), ("e", "b"),
                                                                                      ("b", "l"))}  # fmt: skip
    many = plan_items({f"a{k}": ["o", "e"] for k in range(40)}, pairs="all", seed=3)
    assert 5 < sum(i.left == "o" for i in many) < 35  # sides drawn at random, not always the given order
    assert plan_items(ids, seed=1) == plan_items(ids, seed=1) != plan_items(ids, seed=2)


def test_gold_and_trap_items_carry_their_answer() -> None:
    items = plan_items({"a": ["o", "e"]}, gold=3, traps={"a": ("o", "t")}, n_traps=2, seed=0)
    gold = [i for i in items if i.kind == "gold"]
    traps = [i for i in items if i.kind == "trap"]
    assert len(gold) == 3 and all(i.left == i.right and i.expected == "same" for i in gold)
    assert len(traps) == 2
    for t in traps:
        assert {t.left, t.right} == {"o", "t"} and (t.left if t.expected == "left" else t.right) == "o"


def test_sessions_deal_each_pair_to_distinct_raters_and_checks_to_all() -> None:
    items = plan_items({f"a{k}": ["o", "e", "b"] for k in range(5)}, gold=2, traps={"a0": ("o", "t")}, n_traps=1)
    sessions = plan_sessions(items, raters_per_item=3, items_per_rater=4, seed=1)
    pairs = [k for k, it in enumerate(items) if it.kind == "pair"]
    checks = [k for k, it in enumerate(items) if it.kind != "pair"]
    seen = Counter(k for s in sessions for k in s if k in pairs)
    assert all(seen[k] == 3 for k in pairs)
    assert all(len(set(s)) == len(s) for s in sessions)  # never the same item twice to one rater
    assert all(set(checks) <= set(s) for s in sessions)
    assert max(len(s) for s in sessions) - min(len(s) for s in sessions) <= 1
    full = plan_sessions(items, raters_per_item=2)
    assert len(full) == 2 and all(sorted(s) == list(range(len(items))) for s in full)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"pairs": "some"}, "--pairs"), ({"gold": -1}, "--gold")],
)
def test_design_refuses_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        plan_items({"a": ["o", "e"]}, **kwargs)
    with pytest.raises(InputError, match="at least two"):
        plan_items({"a": ["o"]})
    with pytest.raises(InputError, match="raters-per-item"):
        plan_sessions([PlannedItem("pair", "a", "o", "e")], raters_per_item=0)


# --- store --------------------------------------------------------------------------------------------------------


def test_create_writes_study_items_raters_and_a_trap_copy(store: Store, created: CreatedStudy) -> None:
    counts = table_counts(store)
    assert counts["studies"] == 1 and counts["study_items"] == 3 + 1 + 1 and counts["study_raters"] == 2
    assert counts["study_votes"] == 0
    ss = StudyStore(store)
    items = ss.items(created.study.id)
    assert Counter(i.kind for i in items) == {"pair": 3, "gold": 1, "trap": 1}
    trap = next(i for i in items if i.kind == "trap")
    broken = store.get_variant(trap.right_variant_id if trap.expected == "left" else trap.left_variant_id)
    assert broken.producer_model == "study-trap" and broken.blob_key and broken.frame_count == 12
    stimuli = created.study.config["stimuli"]
    assert {s["variant"] for s in stimuli.values()} == {"original", "espcn", "bicubic", "trap"}
    espcn = next(s for s in stimuli.values() if s["variant"] == "espcn")
    assert espcn["metrics"]["vmaf"] == 80.0 and 0 <= espcn["metrics"]["noref"] <= 100
    assert espcn["input_quality"] == next(s for s in stimuli.values() if s["variant"] == "original")["metrics"]["noref"]
    assert all(len(r.items) == 5 for r in ss.raters(created.study.id))
    assert len({r.token for r in created.raters}) == 2


def test_a_second_study_reuses_the_trap_copy(store: Store, created: CreatedStudy, asset_id: str) -> None:
    before = table_counts(store)["variants"]
    create_study(store, StudySpec(name="again", assets=[asset_id], variants=["original", "espcn"], measure=False))
    assert table_counts(store)["variants"] == before


@pytest.mark.parametrize(
    ("variants", "assets", "message"),
    [
        (["original", "esrgan"], None, "no variant 'esrgan'"),
        (["original", "original"], None, "two different variants"),
        (["espcn", "bicubic"], None, "add 'original'"),
        (["original", "espcn"], ["nope"], "no asset 'nope'"),
    ],
)
def test_a_bad_study_writes_nothing(
    store: Store, asset_id: str, variants: list[str], assets: list[str] | None, message: str
) -> None:
    before = table_counts(store)
    with pytest.raises((InputError, NotFound), match=message):
        create_study(store, StudySpec(name="bad", assets=assets or [asset_id], variants=variants))
    assert table_counts(store) == before


@pytest.mark.parametrize("failure", ["transaction", "measurement"])
def test_a_failed_create_leaves_no_trap_copy_behind(
    store: Store, asset_id: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """The trap copy is encoded before the study is written; whichever later step fails (the database
    transaction, after the trap's blob was stored and its row flushed, or the stimulus measurement), no row, no
    blob and no scratch file of it remains."""
    import framefleet.evaluate.study as study_mod
    import framefleet.quality

    before_rows, before_files = table_counts(store), set(files_under(settings.blob_dir, settings.tmp_dir))
    if failure == "transaction":  # every rater gets the same token: the unique constraint fails the commit
        monkeypatch.setattr(study_mod.secrets, "token_urlsafe", lambda _n=None: "one-token-for-all")
        expected: type[BaseException] = sa.exc.IntegrityError
    else:

        def broken_metric(_path: Path) -> Any:
            raise RuntimeError("no-reference model failed")

        monkeypatch.setattr(framefleet.quality, "estimate_quality", broken_metric)
        expected = RuntimeError
    spec = StudySpec(name="fails", assets=[asset_id], variants=["original", "espcn"], traps=1, raters_per_item=2,
                     measure=failure == "measurement")  # fmt: skip
    with pytest.raises(expected):
        create_study(store, spec, settings)
    assert table_counts(store) == before_rows and all(table_counts(store)[t] == 0 for t in STUDY_TABLES)
    assert set(files_under(settings.blob_dir, settings.tmp_dir)) == before_files
    monkeypatch.undo()
    created = create_study(store, replace(spec, measure=False), settings)  # and the next try works
    assert table_counts(store)["variants"] == before_rows["variants"] + 1
    assert any(i.kind == "trap" for i in created.items)


def test_a_trap_copy_stored_concurrently_is_reused(
    store: Store, asset_id: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another creation stores the same trap copy while this one encodes its own: the insert of the second copy
    fails on the (asset, producer) constraint, nothing of it stays, and the creation is retried with the stored one."""
    import framefleet.evaluate.study as study_mod
    from framefleet.tasks._variants import store_variant

    real, calls = study_mod.encode_trap, []

    def racing(st: Store, original: Any, folder: Path) -> Any:
        calls.append(original.id)
        theirs = real(st, original, folder)  # the concurrent creator's copy, stored while ours is encoded
        ref = st.blobs.put_file(theirs.path, move=True)
        store_variant(st, study_mod._trap_row(theirs, ref), new_blob=ref.created)
        return real(st, original, folder)

    monkeypatch.setattr(study_mod, "encode_trap", racing)
    before_rows, before_files = table_counts(store), set(files_under(settings.blob_dir))
    spec = StudySpec(name="race", assets=[asset_id], variants=["original", "espcn"], traps=1, measure=False)
    created = create_study(store, spec, settings)
    assert len(calls) == 1 and table_counts(store)["studies"] == 1
    assert table_counts(store)["variants"] == before_rows["variants"] + 1  # one trap copy, the first one stored
    assert len(set(files_under(settings.blob_dir)) - before_files) == 1
    trap = next(i for i in created.items if i.kind == "trap")
    broken = trap.right_variant_id if trap.expected == "left" else trap.left_variant_id
    assert store.get_variant(broken).producer_model == "study-trap"


# --- HTTP API -----------------------------------------------------------------------------------------------------


@pytest.fixture
def client(store: Store) -> TestClient:
    return TestClient(create_study_app(store))


def _answer_all(client: TestClient, token: str) -> int:
    n = 0
    while not (nxt := client.get(f"/v1/rate/{token}/next").json())["done"]:
        assert client.post(f"/v1/rate/{token}/votes", json=good_vote(nxt["item"])).status_code == 201
        n += 1
    return n


def test_next_vote_resume_and_done(client: TestClient, created: CreatedStudy, store: Store) -> None:
    token = created.raters[0].token
    first = client.get(f"/v1/rate/{token}/next").json()
    assert first["done"] is False and first["progress"] == {"answered": 0, "total": 5}
    assert set(first) == {"done", "item", "left_url", "right_url", "progress", "study"}  # blind: no kind, no variant
    assert client.get(f"/v1/rate/{token}/next").json()["item"] == first["item"]  # a reload shows the same item
    r = client.post(f"/v1/rate/{token}/votes", json=good_vote(first["item"], artifacts=["other", "blur"]))
    assert r.status_code == 201 and r.json()["progress"] == {"answered": 1, "total": 5} and r.json()["done"] is False
    second = client.get(f"/v1/rate/{token}/next").json()
    assert second["item"] != first["item"] and second["progress"]["answered"] == 1
    assert _answer_all(client, token) == 4
    assert client.get(f"/v1/rate/{token}/next").json() == {"done": True, "progress": {"answered": 5, "total": 5}}
    rows = StudyStore(store).votes(created.study.id)
    assert len(rows) == 5 and rows[0].vote.artifacts == ["blur", "other"]  # canonical order
    assert StudyStore(store).rater(token).answered == 5


def test_videos_are_served_only_for_the_raters_own_items(client: TestClient, created: CreatedStudy) -> None:
    token = created.raters[0].token
    nxt = client.get(f"/v1/rate/{token}/next").json()
    full = client.get(nxt["left_url"])
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4" and full.content[4:8] == b"ftyp"
    assert "filename" not in full.headers.get("content-disposition", "")
    part = client.get(nxt["right_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    other = created.raters[1].token
    assert client.get(f"/v1/rate/{other}/items/{nxt['item']}/left").status_code == 200  # every rater sees all here
    assert client.get(f"/v1/rate/{token}/items/{nxt['item']}/middle").status_code == 404
    assert client.get(f"/v1/rate/{token}/items/not-an-item/left").status_code == 404
    assert client.get(f"/v1/rate/unknown-token/items/{nxt['item']}/left").status_code == 404


def test_unknown_token_is_404_everywhere(client: TestClient, created: CreatedStudy, store: Store) -> None:
    item = created.items[0].id
    for r in (client.get("/v1/rate/nope/next"), client.post("/v1/rate/nope/votes", json=good_vote(item)),
              client.get("/rate/nope")):  # fmt: skip
        assert r.status_code == 404
    body = client.get("/v1/rate/nope/next").json()
    assert body["error"]["reason"] == "unknown_token"
    assert table_counts(store)["study_votes"] == 0


def test_a_vote_for_an_item_outside_the_session_is_404(
    client: TestClient, created: CreatedStudy, store: Store, asset_id: str, settings: Settings
) -> None:
    other = create_study(store, StudySpec(name="other", assets=[asset_id], variants=["original", "espcn"],
                                          traps=0, gold=0, raters_per_item=1, measure=False), settings)  # fmt: skip
    r = client.post(f"/v1/rate/{created.raters[0].token}/votes", json=good_vote(other.items[0].id))
    assert r.status_code == 404 and r.json()["error"]["reason"] == "not_found"
    assert table_counts(store)["study_votes"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"left_score": 0}, {"left_score": 6}, {"right_score": "3"}, {"right_score": 3.5}, {"left_score": True},
        {"left_score": None}, {"preference": "both"}, {"preference": None}, {"artifacts": ["noise"]},
        {"artifacts": "blur"}, {"item": 7}, {"extra": 1},
    ],
)  # fmt: skip
def test_a_bad_vote_is_422_and_stores_nothing(
    client: TestClient, created: CreatedStudy, store: Store, change: dict[str, Any]
) -> None:
    token = created.raters[0].token
    item = client.get(f"/v1/rate/{token}/next").json()["item"]
    r = client.post(f"/v1/rate/{token}/votes", json={**good_vote(item), **change})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["reason"] == "invalid_vote"
    missing = good_vote(item)
    del missing["preference"]
    assert client.post(f"/v1/rate/{token}/votes", json=missing).status_code == 422
    assert table_counts(store)["study_votes"] == 0


def test_malformed_bodies_are_4xx_not_500(client: TestClient, created: CreatedStudy) -> None:
    token = created.raters[0].token
    for body in (b"", b"{", b"[1, 2]", b"\xff\xfe", b'{"left_score": NaN}', b"[" * 100_000):
        r = client.post(f"/v1/rate/{token}/votes", content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (body[:10], r.status_code)
    assert client.post(f"/v1/rate/{token}/votes", content=b" " * 20_000).status_code == 413


def test_a_second_vote_for_the_same_item_is_409_and_not_counted(
    client: TestClient, created: CreatedStudy, store: Store
) -> None:
    token = created.raters[0].token
    item = client.get(f"/v1/rate/{token}/next").json()["item"]
    assert client.post(f"/v1/rate/{token}/votes", json=good_vote(item)).status_code == 201
    again = client.post(f"/v1/rate/{token}/votes", json=good_vote(item, left_score=1, preference="right"))
    assert again.status_code == 409 and again.json()["error"]["reason"] == "already_voted"
    assert "retry-after" not in again.headers
    rows = StudyStore(store).votes(created.study.id)
    assert len(rows) == 1 and rows[0].vote.left_score == 4  # the first answer stands
    assert StudyStore(store).rater(token).answered == 1
    with store.engine.connect() as c:  # and the database itself refuses a duplicate row
        dup = sa.text("insert into study_votes (id, study_id, rater_id, item_id, left_score, right_score, preference, "
                      "artifacts, created_at) select 'dup', study_id, rater_id, item_id, 1, 1, 'same', artifacts, "
                      "created_at from study_votes")  # fmt: skip
        with pytest.raises(sa.exc.IntegrityError):
            c.execute(dup)


def test_the_page_and_its_assets_are_local(client: TestClient, created: CreatedStudy) -> None:
    page = client.get(f"/rate/{created.raters[0].token}")
    assert page.status_code == 200 and created.raters[0].token in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, nothing fetched from elsewhere
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = client.get(f"/rate-assets/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert "http://" not in r.text and "https://" not in r.text
    assert client.get("/rate-assets/..%2Fapi.py").status_code == 404


# --- CLI ----------------------------------------------------------------------------------------------------------


def test_cli_create_export_and_bad_variant(store: Store, asset_id: str, tmp_path: Path, settings: Settings) -> None:
    before = table_counts(store)
    bad = run_cli("study", "create", "--name", "x", "--asset", asset_id, "--variants", "original,nosuch", "--json")
    assert bad.returncode == 2 and "no variant 'nosuch'" in bad.stderr
    assert one_json(bad.stdout)["error"]["type"] == "InputError"
    assert table_counts(store) == before
    r = run_cli("study", "create", "--name", "cli study", "--asset", asset_id, "--variants",
                "original,espcn,bicubic", "--gold", "1", "--raters-per-item", "2", "--base-url",
                "http://rate.example:9000", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = one_json(r.stdout)
    assert got["items"] == {"pair": 3, "gold": 1, "trap": 1} and len(got["raters"]) == 2
    link = got["raters"][0]
    assert link["url"] == f"http://rate.example:9000/rate/{link['token']}"
    study_id = got["study"]["id"]
    client = TestClient(create_study_app(store))
    _answer_all(client, link["token"])
    for suffix in ("csv", "json"):
        e = run_cli("study", "export", study_id, "-o", str(tmp_path / f"votes.{suffix}"), "--json")
        assert e.returncode == 0 and one_json(e.stdout)["votes"] == 5, e.stderr
    rows = list(csv.DictReader((tmp_path / "votes.csv").open()))
    assert len(rows) == 5 and {r["kind"] for r in rows} == {"pair", "gold", "trap"} and rows[0]["artifacts"] == "blur"
    assert {r["left_label"] for r in rows} <= {"original", "espcn", "bicubic", "trap"}
    data = json.loads((tmp_path / "votes.json").read_text())
    assert data["study"] == study_id and len(data["votes"]) == 5
    assert run_cli("study", "export", study_id, "-o", str(tmp_path / "votes.txt")).returncode == 2
    assert run_cli("study", "export", "nope", "-o", str(tmp_path / "v.csv")).returncode == 2
    listed = one_json(run_cli("study", "list", "--json").stdout)["studies"]
    assert [(s["id"], s["votes"], s["expected_votes"]) for s in listed] == [(study_id, 5, 10)]


def test_cli_results_without_votes_is_exit_2(store: Store, created: CreatedStudy) -> None:
    r = run_cli("study", "results", created.study.id, "--json")
    assert r.returncode == 2 and "no votes yet" in r.stderr


def test_study_tables_are_in_the_migration(store: Store) -> None:
    with store.engine.connect() as c:
        names = set(sa.inspect(c).get_table_names())
    assert set(STUDY_TABLES) <= names
