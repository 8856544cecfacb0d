"""Campaign runs end to end on a synthetic dataset (local thread workers; the Ray pool is in
test_campaign_ray.py): no excluded person in any chosen photo, resume without duplicates, the blocklist, the
kill switch, the throttle, bad input recorded per recipient, and delivery gated by the local date."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framefleet.campaign.curate import curate, exclusions_for
from framefleet.campaign.dataset import load_dataset
from framefleet.campaign.health import Health, Throttle
from framefleet.campaign.pools import LocalPool
from framefleet.campaign.runner import RunConfig, RunSummary, run_campaign
from framefleet.campaign.vision import analyse_photos
from framefleet.campaign.work import Fault, RecipientRenderer, RenderOptions
from framefleet.errors import NotFound, NotYet
from framefleet.media.probe import probe
from framefleet.store import Store
from framefleet.store.campaigns import CampaignStore

from conftest import one_json, run_cli

SMALL = RenderOptions(size=(320, 180), fps=10, per_photo_s=2.0, max_photos=6)
DAY = date(2027, 2, 4)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from framefleet.campaign.synth import synthesize

    out = tmp_path_factory.mktemp("campaign") / "data"
    synthesize(out, 120, seed=3)
    return out


@pytest.fixture
def cstore(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "blobs", tmp_path / "tmp")
    yield CampaignStore(store)
    store.close()


def pool_for(data: Path, staging: Path, workers: int = 2, faults: dict[int, Fault] | None = None) -> LocalPool:
    faults = faults or {}
    return LocalPool(
        workers,
        lambda w: RecipientRenderer(str(data), str(staging), "fd", SMALL, w, faults.get(int(w.split("-")[1]))),
    )


def test_no_excluded_person_is_in_any_chosen_photo_by_tags_or_by_the_faces_really_shown(data: Path) -> None:
    ds = load_dataset(data)
    truth = {}
    for line in (data / "truth" / "faces.jsonl").read_text().splitlines():
        row = json.loads(line)
        truth[row["photo"]] = {f["person"] for f in row["faces"]}
    seen = analyse_photos(ds)
    chosen = skipped = 0
    for person in ds.people:
        cur = curate(person.id, ds, faces=seen.faces, hashes=seen.hashes, unreadable=seen.unreadable)
        excluded = exclusions_for(person.id, ds.exclusions)
        for p in cur.photos:
            chosen += 1
            assert not set(p.tagged) & excluded, (person.id, p.id)
            assert not truth[p.id] & excluded, (person.id, p.id, "an excluded person's face is in the photo")
        skipped += cur.skipped is not None
    assert chosen > 300 and 0 < skipped < len(ds.people)  # the check had real work to do, and skips happen
    assert any(exclusions_for(p.id, ds.exclusions) for p in ds.people)


def test_a_run_renders_resumes_and_keeps_exactly_one_video_per_recipient(
    data: Path, cstore: Any, tmp_path: Path
) -> None:
    cfg = RunConfig("fd", DAY, limit=4)
    pool = pool_for(data, tmp_path / "staging")
    try:
        first = run_campaign(load_dataset(data), cstore, pool, cfg)
        second = run_campaign(load_dataset(data), cstore, pool, cfg)
    finally:
        pool.close()
    assert first.rendered + sum(first.skipped.values()) == 4 and first.failed == 0
    assert second.already_done == 4 and second.rendered + sum(second.skipped.values()) == 4
    done = cstore.finished("fd")
    assert len(done) == 8
    videos = cstore.videos("fd")
    assert len(videos) == first.rendered + second.rendered > 0
    assert len({v.params["recipient"] for v in videos}) == len(videos)  # one per recipient
    for v in videos:
        info = probe(cstore.store.blobs.open_path(v.blob_key))
        assert info.video is not None and info.audio is not None and (info.width, info.height) == (320, 180)
        assert 15.0 - 0.15 <= info.duration <= 30.0 + 0.15 and abs(info.duration - v.duration) < 0.15
    assert not list((tmp_path / "staging").rglob("*.mp4"))  # every render moved into the store, no temp left


def test_a_faulty_worker_is_blocklisted_and_its_recipients_go_elsewhere(
    data: Path, cstore: Any, tmp_path: Path
) -> None:
    pool = pool_for(data, tmp_path / "staging", workers=3, faults={1: Fault(fail_rate=1.0)})
    try:
        s = run_campaign(load_dataset(data), cstore, pool, RunConfig("fd", DAY, limit=6, health=Health(min_tasks=2)))
    finally:
        pool.close()
    assert list(s.blocklisted) == ["local-1"] and "error rate" in s.blocklisted["local-1"], s.blocklisted
    assert s.failed == 0 and s.rendered + sum(s.skipped.values()) == 6
    machines = {v.machine for v in _rows(cstore)}
    assert "local-1" not in machines


def _rows(cstore: Any) -> list[Any]:
    from sqlalchemy import select

    from framefleet.store.models import CampaignRecipient

    with cstore.store.session() as s:
        return list(s.scalars(select(CampaignRecipient)))


def test_the_kill_switch_stops_new_work_within_seconds(data: Path, cstore: Any, tmp_path: Path) -> None:
    pool = pool_for(data, tmp_path / "staging")
    cstore.ensure("fd", DAY)
    killed_at: list[float] = []

    def kill_after_first(s: RunSummary, done: int, total: int) -> None:
        if not killed_at:
            threading.Thread(target=cstore.set_killed, args=("fd",)).start()
            killed_at.append(done)

    try:
        s = run_campaign(
            load_dataset(data), cstore, pool, RunConfig("fd", DAY, poll_s=0.2), on_progress=kill_after_first
        )
    finally:
        pool.close()
    assert s.killed
    done = s.rendered + sum(s.skipped.values()) + s.failed
    assert done <= 3  # the one that triggered it, and at most one in flight per worker
    assert len(cstore.finished("fd")) == done


def test_a_slow_worker_is_blocklisted_against_the_fleet_median() -> None:
    h = Health(min_tasks=3, slow_factor=3.0)
    h.add(["a", "b", "c"])
    for _ in range(4):
        assert h.record("a", ok=True, seconds=1.0) is None
        assert h.record("b", ok=True, seconds=1.2) is None
    assert h.record("c", ok=True, seconds=5.0) is None
    assert h.record("c", ok=True, seconds=5.0) is None
    assert "median render" in (h.record("c", ok=True, seconds=5.0) or "")
    assert h.stuck("a", 60.0) and not h.stuck("a", 2.0)


def test_the_last_healthy_worker_is_never_blocklisted() -> None:
    h = Health(min_tasks=1)
    h.add(["a", "b"])
    assert h.record("a", ok=False) is not None
    assert h.record("b", ok=False) is None and h.healthy() == ["b"]


@settings(max_examples=50, deadline=None)
@given(rate=st.floats(0.2, 50), burst=st.floats(1, 10), steps=st.lists(st.floats(0, 0.5), min_size=1, max_size=200))
def test_the_throttle_never_starts_more_than_rate_times_time_plus_burst(
    rate: float, burst: float, steps: list[float]
) -> None:
    th, now, took = Throttle(rate, burst=burst), 0.0, 0
    for dt in steps:
        now += dt
        took += th.take(now)
    assert took <= 1 + rate * now + burst


def _damaged_copy(data: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the dataset where the photos of one recipient are missing or corrupt."""
    copy = tmp_path / "damaged"
    shutil.copytree(data, copy)
    ds = load_dataset(copy)
    victim = next(p.id for p in ds.people if len(ds.photos_of(p.id)) >= 6)
    photos = ds.photos_of(victim)
    (copy / photos[0].path).unlink()
    (copy / photos[1].path).write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    return copy, victim


def test_missing_and_corrupt_photos_are_skipped_with_a_reason_and_the_rest_continues(
    data: Path, tmp_path: Path
) -> None:
    copy, victim = _damaged_copy(data, tmp_path)
    worker = RecipientRenderer(str(copy), str(tmp_path / "staging"), "fd", SMALL, "w")
    ds = worker.dataset
    seen = analyse_photos(ds, ds.photos_of(victim))
    reasons = set(seen.unreadable.values())
    assert "photo file missing" in reasons and any(r.startswith("photo unreadable") for r in reasons)
    out = worker(victim)
    assert out["status"] in ("rendered", "skipped")
    if out["status"] == "rendered":
        assert Path(out["path"]).is_file()
        assert not set(seen.unreadable) & set(out["media"]["metrics"]["photos"])


def test_people_without_friends_or_photos_are_skipped_with_the_reason(data: Path, tmp_path: Path) -> None:
    worker = RecipientRenderer(str(data), str(tmp_path / "staging"), "fd", SMALL, "w")
    ds = worker.dataset
    lonely = next(p.id for p in ds.people if not ds.friendships_of(p.id))
    no_photos = next(p.id for p in ds.people if not ds.photos_of(p.id))
    for pid in (lonely, no_photos):
        out = worker(pid)
        assert out["status"] == "skipped" and "usable photo" in out["reason"]
    assert not (tmp_path / "staging").exists() or not list((tmp_path / "staging").rglob("*.mp4"))


def _video(tmp_path: Path) -> Path:
    from conftest import write_clip

    return write_clip(tmp_path / "v.mp4", frames=4)


def test_delivery_opens_at_local_midnight_and_the_throttle_pulls_it_back(store: Store, tmp_path: Path) -> None:
    from framefleet.campaign.delivery import deliver
    from framefleet.campaign.rollout import local_day_start

    cs = CampaignStore(store)
    cs.ensure("fd", DAY)
    opens = local_day_start(DAY, "Asia/Kathmandu").astimezone(UTC)  # +5:45
    media = {"container": "mp4", "video_codec": "h264", "duration": 0.2}
    cs.record_rendered("fd", "p1", tz="Asia/Kathmandu", opens_at=opens, video=_video(tmp_path), media=media,
                       machine="w0", render_s=1.0)  # fmt: skip
    # a late duplicate (a retried task) changes nothing
    again = tmp_path / "again"
    again.mkdir()
    cs.record_rendered("fd", "p1", tz="Asia/Kathmandu", opens_at=opens, video=_video(again), media=media,
                       machine="w1", render_s=1.0)  # fmt: skip
    assert len(cs.videos("fd")) == 1
    with pytest.raises(NotYet) as e:
        deliver(store, "fd", "p1", opens - timedelta(seconds=1))
    assert "2027-02-04T00:00:00+05:45" in e.value.message and e.value.opens_at == opens.isoformat()
    assert deliver(store, "fd", "p1", opens).path.is_file()
    cs.set_delivery_share("fd", 0.0)
    with pytest.raises(NotFound, match="paused"):
        deliver(store, "fd", "p1", opens + timedelta(hours=1))
    cs.record_skip("fd", "p2", tz="UTC", opens_at=opens, reason="only 1 usable photo")
    cs.set_delivery_share("fd", 1.0)
    with pytest.raises(NotFound, match="no fd video"):
        deliver(store, "fd", "p2", opens + timedelta(hours=1))


def test_the_gateway_serves_the_video_only_from_the_local_day(tmp_path: Path) -> None:
    import asyncio

    from test_gateway import CONFIG, URLS

    from framefleet.serve.gateway_app import create_gateway_app

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "blobs", tmp_path / "tmp")
    cs = CampaignStore(store)
    now = datetime.now(UTC)
    media = {"container": "mp4", "video_codec": "h264"}
    for name, opens in (("past", now - timedelta(days=1)), ("future", now + timedelta(hours=5))):
        cs.ensure(name, opens.date())
        clip_dir = tmp_path / name
        clip_dir.mkdir()
        cs.record_rendered(name, "p1", tz="UTC", opens_at=opens, video=_video(clip_dir), media=media, machine=None,
                           render_s=None)  # fmt: skip
    app = create_gateway_app(CONFIG, URLS, store=store, seed=1)
    key = {"Authorization": "Bearer key-a"}

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            return [
                await c.get("/v1/campaigns/past/videos/p1", headers=key),
                await c.get("/v1/campaigns/future/videos/p1", headers=key),
                await c.get("/v1/campaigns/past/videos/nobody", headers=key),
                await c.get("/v1/campaigns/past/videos/p1"),
                await c.get("/v1/campaigns/past/videos/p1", headers={**key, "Range": "bytes=0-9"}),
            ]

    ok, early, missing, anonymous, ranged = asyncio.run(go())
    store.close()
    assert ok.status_code == 200 and ok.headers["content-type"] == "video/mp4" and ok.content[4:8] == b"ftyp"
    assert early.status_code == 404 and early.json()["error"]["reason"] == "not_yet_available"
    assert early.headers["cache-control"] == "no-store" and 4 * 3600 < int(early.headers["retry-after"]) <= 5 * 3600
    assert "opens_at" in early.json() and not early.content.startswith(b"\x00")
    assert missing.status_code == 404 and anonymous.status_code == 401
    assert ranged.status_code == 206 and len(ranged.content) == 10


def test_cli_video_before_the_day_exits_4_with_the_opening_time(tmp_path: Path, home: Path) -> None:
    store = Store.open()
    cs = CampaignStore(store)
    cs.ensure("fd", DAY)
    opens = datetime(2027, 2, 3, 18, 30, tzinfo=UTC)
    cs.record_rendered("fd", "p1", tz="Asia/Kolkata", opens_at=opens, video=_video(tmp_path), media={},
                       machine=None, render_s=None)  # fmt: skip
    store.close()
    early = run_cli("campaign", "video", "fd", "p1", "--at", "2027-02-03T18:29:59Z", "--json")
    assert early.returncode == 4 and "2027-02-04T00:00:00+05:30" in one_json(early.stdout)["error"]["message"]
    got = run_cli("campaign", "video", "fd", "p1", "--at", "2027-02-04T00:00:00+05:30", "--out",
                  str(tmp_path / "mine.mp4"), "--json")  # fmt: skip
    assert got.returncode == 0 and (tmp_path / "mine.mp4").stat().st_size > 0
    bad = run_cli("campaign", "video", "fd", "p1", "--at", "2027-02-04T00:00:00")
    assert bad.returncode == 2 and "offset" in bad.stderr
    assert run_cli("campaign", "throttle", "fd", "--delivery", "0").returncode == 0
    paused = run_cli("campaign", "video", "fd", "p1", "--at", "2027-02-05T00:00:00Z")
    assert paused.returncode == 2 and "paused" in paused.stderr
    assert run_cli("campaign", "throttle", "fd", "--delivery", "1.5").returncode == 2


class _ScriptedPool:
    """Workers with scripted outcomes and no rendering: 'bad' always fails, 'good' skips at once."""

    def __init__(self) -> None:
        self.workers = ["bad", "good"]
        self.done: dict[int, Any] = {}
        self.log: list[tuple[str, str]] = []

    def submit(self, worker: str, recipient: str) -> int:
        self.log.append((worker, recipient))
        handle = len(self.log)
        self.done[handle] = "RuntimeError: injected" if worker == "bad" else {
            "status": "skipped", "reason": "only 1 usable photo (need 4)", "seconds": 0.01}  # fmt: skip
        return handle

    def wait(self, handles: list[int], timeout: float) -> list[tuple[int, Any]]:
        return [(h, self.done.pop(h)) for h in handles if h in self.done]

    def cancel(self, handle: int) -> None:
        self.done.pop(handle, None)

    def retire(self, worker: str) -> None:
        pass


def test_a_failed_recipient_is_retried_on_another_worker_and_only_the_listed_ones_run(data: Path, cstore: Any) -> None:
    pool = _ScriptedPool()
    ds = load_dataset(data)
    only = (ds.people[5].id, ds.people[2].id, ds.people[9].id, ds.people[4].id)
    s = run_campaign(ds, cstore, pool, RunConfig("fd", DAY, only=only))
    assert s.failed == 0 and s.skipped == {"only N usable photo (need N)": 4}  # each retried on 'good'
    for recipient in only:
        assert [w for w, r in pool.log if r == recipient].count("bad") <= 1
    assert {r for _, r in pool.log} == set(only) and set(cstore.finished("fd")) == set(only)
