"""The synthetic campaign dataset: it loads, its faces agree with the ground truth, its social graph has the
shapes curation must cope with (exclusions with a cycle, people without friends or photos), it is the same for
the same seed, and the cascade finds the faces of photos that list none."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import pytest

from framefleet.campaign import synth
from framefleet.campaign.curate import curate, exclusions_for, hamming
from framefleet.campaign.dataset import Dataset, load_dataset
from framefleet.campaign.synth import SynthSummary, synthesize
from framefleet.campaign.vision import analyse_photos, phash
from framefleet.errors import InputError
from framefleet.media.image import load_image

BOX = ("x", "y", "w", "h")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary, Dataset]:
    out = tmp_path_factory.mktemp("synth") / "campaign"
    summary = synthesize(out, 200, seed=7)
    return out, summary, load_dataset(out)


def test_loads_and_summary_counts_what_was_written(made: tuple[Path, SynthSummary, Dataset]) -> None:
    out, summary, d = made
    assert (summary.people, summary.friendships, summary.exclusions, summary.photos) == (
        len(d.people), len(d.friendships), len(d.exclusions), len(d.photos),
    )  # fmt: skip
    assert summary.people == 200 and 800 <= summary.photos <= 1800
    assert summary.files == len({p.path for p in d.photos}) < summary.photos  # a near-duplicate shares a file
    assert summary.bytes == sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert summary.to_dict()["people"] == 200
    assert [p.name for p in out.parent.iterdir()] == ["campaign"]  # the temporary sibling is gone
    ids = {p.id for p in d.people}
    assert all(len(i) == 7 and i.startswith("p") for i in ids)
    assert all(t in ids for p in d.photos for t in p.tagged)
    assert all(d.photo_path(p).is_file() for p in d.photos)
    zones = {p.tz for p in d.people}
    assert {"Asia/Kathmandu", "America/St_Johns", "Asia/Kolkata"} <= zones  # every zone shows up at 100+ people


def test_photos_are_real_jpegs_in_the_owners_zone(made: tuple[Path, SynthSummary, Dataset]) -> None:
    _, _, d = made
    for p in d.photos[:40]:
        img = cv2.imread(str(d.photo_path(p)))
        assert img is not None
        h, w = img.shape[:2]
        assert max(h, w) <= 640 and abs(max(h, w) / min(h, w) - 4 / 3) < 0.02  # 4:3 (a resized upload a bit smaller)
    end = datetime.fromisoformat("2026-12-02T00:00:00+00:00")
    for p in d.photos:
        assert p.taken_at.tzinfo is not None and end - timedelta(days=3 * 365 + 2) < p.taken_at < end
        owner = d.person(p.owner)
        assert owner is not None and p.taken_at.utcoffset() == p.taken_at.astimezone(owner.zone).utcoffset()


def test_face_boxes_match_the_ground_truth(made: tuple[Path, SynthSummary, Dataset]) -> None:
    out, _, _ = made
    rows = _jsonl(out / "photos.jsonl")
    truth = {t["photo"]: t["faces"] for t in _jsonl(out / "truth" / "faces.jsonl")}
    assert len(truth) == len(rows)
    listed = bystanders = 0
    for row in rows:
        faces = truth[row["id"]]
        shown = [f["person"] for f in faces]
        extra = [p for p in shown if p not in row["tagged"]]
        assert sorted(set(shown) - set(extra)) == sorted(row["tagged"]) and len(extra) <= 1  # k tags, k faces
        bystanders += bool(extra)
        if "faces" in row:
            listed += 1
            assert [[f[k] for k in BOX] for f in row["faces"]] == [[f[k] for k in BOX] for f in faces]
            assert [f.get("person") for f in row["faces"]] == [None if p in extra else p for p in shown]
    assert 0.6 <= listed / len(rows) <= 0.8
    assert 0.05 <= bystanders / len(rows) <= 0.16


def test_closeups_fill_enough_of_the_frame(made: tuple[Path, SynthSummary, Dataset]) -> None:
    _, _, d = made
    fill = {p.id: sum(f.area for f in p.faces) for p in d.photos if p.faces is not None}
    closeups = [fill[p.id] for p in d.photos if p.id in fill and 2 <= len(p.tagged) <= 3]  # 4 may be a group
    assert closeups and min(closeups) >= 0.09  # curation's close-up threshold is 0.08
    groups = [fill[p.id] for p in d.photos if p.id in fill and len(p.tagged) >= 5]
    assert groups and max(groups) < 0.2


def test_social_graph_has_what_curation_must_handle(made: tuple[Path, SynthSummary, Dataset]) -> None:
    _, _, d = made
    degree = Counter(x for f in d.friendships for x in (f.a, f.b))
    assert 6 <= 2 * len(d.friendships) / len(d.people) <= 16
    assert max(degree.values()) >= 3 * 2 * len(d.friendships) / len(d.people)  # hubs: a heavy tail
    assert 0 < sum(1 for p in d.people if p.id not in degree) <= 20  # a few people without friends
    owners = {p.owner for p in d.photos}
    assert 0 < sum(1 for p in d.people if p.id not in owners) <= 40  # a few without photos
    zone = {p.id: p.tz for p in d.people}
    assert sum(zone[f.a] == zone[f.b] for f in d.friendships) > 0.5 * len(d.friendships)
    pairs = Counter(frozenset((a, b)) for p in d.photos for a in p.tagged for b in p.tagged if a < b)
    assert all(f.cotags == pairs[frozenset((f.a, f.b))] for f in d.friendships)
    assert {e.reason for e in d.exclusions} <= {"blocked", "hidden", "ex"} and len(d.exclusions) >= 3
    assert all(e.person != e.excluded for e in d.exclusions)
    edges = {(e.person, e.excluded) for e in d.exclusions}
    assert any((b, c) in edges and (c, a) in edges for a, b in edges for c in {y for x, y in edges})


def test_some_bystander_is_someone_a_tagged_person_excludes(made: tuple[Path, SynthSummary, Dataset]) -> None:
    out, _, d = made
    truth = {t["photo"]: t["faces"] for t in _jsonl(out / "truth" / "faces.jsonl")}
    risky = [
        p.id
        for p in d.photos
        for f in truth[p.id]
        if f["person"] not in p.tagged and any(f["person"] in exclusions_for(t, d.exclusions) for t in p.tagged)
    ]
    assert risky


def test_curation_with_listed_faces_never_shows_an_excluded_person(made: tuple[Path, SynthSummary, Dataset]) -> None:
    out, _, d = made
    truth = {t["photo"]: {f["person"] for f in t["faces"]} for t in _jsonl(out / "truth" / "faces.jsonl")}
    photos = tuple(p for p in d.photos if p.faces is not None)
    listed = Dataset(people=d.people, friendships=d.friendships, exclusions=d.exclusions, photos=photos, root=d.root)
    recipients = {x for e in d.exclusions for x in (e.person, e.excluded)}
    chosen = 0
    for r in sorted(recipients):
        excluded = exclusions_for(r, d.exclusions)
        for c in curate(r, listed).photos:
            chosen += 1
            assert not truth[c.id] & excluded, (r, c.id)
    assert chosen > 0


def test_near_duplicates_hash_close(made: tuple[Path, SynthSummary, Dataset]) -> None:
    _, _, d = made
    twins = [
        (a, b)
        for a, b in zip(d.photos, d.photos[1:], strict=False)
        if a.owner == b.owner and a.tagged == b.tagged and timedelta(0) < b.taken_at - a.taken_at < timedelta(hours=1)
    ]
    assert twins
    for a, b in twins:
        ha, hb = (phash(load_image(d.photo_path(p), max_pixels=10**7)) for p in (a, b))
        assert hamming(ha, hb) <= 10


def test_detection_finds_faces_in_photos_without_a_faces_key(made: tuple[Path, SynthSummary, Dataset]) -> None:
    _, _, d = made
    unlisted = [p for p in d.photos if p.faces is None][::12][:30]
    found = analyse_photos(d, unlisted, detect="missing").faces
    assert len(unlisted) >= 25 and not set(found) ^ {p.id for p in unlisted}
    assert sum(1 for p in unlisted if found[p.id]) >= 0.8 * len(unlisted)


def test_same_seed_same_dataset(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", 40, seed=3, photos_per_person=3, threads=1)
    b = synthesize(tmp_path / "b", 40, seed=3, photos_per_person=3, threads=2)
    c = synthesize(tmp_path / "c", 40, seed=4, photos_per_person=3)
    assert a.photos == b.photos and a.bytes == b.bytes
    for name in ("people.jsonl", "friendships.jsonl", "exclusions.jsonl", "photos.jsonl", "truth/faces.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    first = _jsonl(tmp_path / "a" / "photos.jsonl")[0]["path"]
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()
    assert (tmp_path / "a" / "photos.jsonl").read_bytes() != (tmp_path / "c" / "photos.jsonl").read_bytes()
    assert c.people == 40


def test_refuses_a_non_empty_folder_and_bad_options(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="empty folder"):
        synthesize(out, 10)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(InputError, match="empty folder"):
        synthesize(out / "keep.txt", 10)
    with pytest.raises(InputError, match="people"):
        synthesize(tmp_path / "new", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_empty_folder_is_filled(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    summary = synthesize(out, 6, photos_per_person=1)
    assert summary.people == 6 and len(load_dataset(out).people) == 6


def test_a_crash_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: object, root: Path, shot: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(synth._Painter, "write", boom)
    with pytest.raises(OSError, match="disk full"):
        synthesize(tmp_path / "out", 20, photos_per_person=2)
    assert list(tmp_path.iterdir()) == []
