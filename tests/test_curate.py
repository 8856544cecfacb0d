"""Campaign curation (pure) and the dataset loader: exclusions both ways, roles, order, near-duplicates, skips."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framefleet.campaign import (
    Dataset,
    Exclusion,
    FaceBox,
    Friendship,
    Person,
    Photo,
    curate,
    curate_all,
    exclusions_for,
    load_dataset,
    rank_friends,
)
from framefleet.campaign.curate import FriendWeights
from framefleet.errors import InputError

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
BIG = (FaceBox(0.1, 0.1, 0.3, 0.4), FaceBox(0.5, 0.1, 0.3, 0.4))  # two faces filling 24% of the frame


def _person(pid: str) -> Person:
    return Person(pid, pid.title(), "Europe/Paris", "fr-FR")


def _photo(pid: str, tagged: list[str], minutes: int, faces: tuple[FaceBox, ...] | None = None) -> Photo:
    """A photo whose first faces are named after the tagged people, in order (as a platform's face index does);
    faces beyond the tags stay unnamed."""
    if faces is not None:
        faces = tuple(
            replace(f, person=tagged[i]) if f.person is None and i < len(tagged) else f for i, f in enumerate(faces)
        )
    return Photo(pid, tagged[0], f"img/{pid}.jpg", tuple(tagged), T0 + timedelta(minutes=minutes), faces)


def _faces(n: int, side: float = 0.2) -> tuple[FaceBox, ...]:
    return tuple(FaceBox(0.0, min(i * 0.01, 0.5), side, side) for i in range(n))


# r is the recipient; a..d are friends; the rest exist to exclude (or not) in every direction
PEOPLE = ["r", "a", "b", "c", "d", "blk_out", "blk_in", "ex_out", "ex_in", "hid_out", "hid_in"]
EXCLUSIONS = (
    Exclusion("r", "blk_out", "blocked"),  # r blocked blk_out
    Exclusion("blk_in", "r", "blocked"),  # blk_in blocked r: still keeps blk_in out of r's video
    Exclusion("r", "ex_out", "ex"),
    Exclusion("ex_in", "r", "ex"),
    Exclusion("r", "hid_out", "hidden"),  # r hid hid_out: hid_out is not in r's video ...
    Exclusion("hid_in", "r", "hidden"),  # ... but hid_in hiding r does not keep hid_in out of r's video
)
FRIENDS = (
    Friendship("r", "a", likes=10, comments=1, cotags=3),
    Friendship("b", "r", likes=2),
    Friendship("r", "c", comments=4),
    Friendship("d", "r", cotags=1),
    Friendship("a", "b", likes=100),
)


def _dataset(photos: list[Photo]) -> Dataset:
    # hid_in hid r but is still r's friend: r may see them (a "hidden" exclusion is one way)
    return Dataset(tuple(_person(p) for p in PEOPLE), (*FRIENDS, Friendship("r", "hid_in")), EXCLUSIONS, tuple(photos))


def test_exclusions_blocked_and_ex_work_both_ways_hidden_one_way() -> None:
    assert exclusions_for("r", EXCLUSIONS) == {"blk_out", "blk_in", "ex_out", "ex_in", "hid_out"}
    assert "hid_in" not in exclusions_for("r", EXCLUSIONS)
    for other in ("blk_out", "blk_in", "ex_out", "ex_in", "hid_in"):
        assert exclusions_for(other, EXCLUSIONS) == {"r"}, other
    assert exclusions_for("hid_out", EXCLUSIONS) == frozenset()  # r hid them; they may still see r
    assert exclusions_for("a", EXCLUSIONS) == frozenset()


def test_rank_friends_uses_documented_weights() -> None:
    ranked = rank_friends("r", FRIENDS)
    w = FriendWeights()
    assert [f.id for f in ranked] == ["a", "c", "d", "b"]
    assert ranked[0].score == 10 * w.likes + 1 * w.comments + 3 * w.cotags
    assert rank_friends("r", FRIENDS, FriendWeights(likes=100, comments=0, cotags=0))[0].id == "a"
    assert [f.id for f in rank_friends("b", FRIENDS)] == ["a", "r"]


def test_curation_drops_every_excluded_person_and_orders_closeups_then_group() -> None:
    photos = [
        _photo("c_a", ["r", "a"], 5, BIG),
        _photo("c_b", ["r", "b"], 1, BIG),
        _photo("c_c", ["r", "c"], 3, BIG),
        _photo("c_hid_in", ["r", "hid_in"], 4, BIG),  # allowed: hid_in hid r, not the other way round
        *[_photo(f"x_{p}", ["r", p], 2, BIG) for p in ("blk_out", "blk_in", "ex_out", "ex_in", "hid_out")],
        _photo("g_ok", ["r", "a", "b", "c", "d"], 30, _faces(5)),
        _photo("g_ok_early", ["r", "a", "b", "d"], 20, _faces(4, 0.1)),
        _photo("g_blk", ["a", "b", "r", "c", "blk_in"], 10, _faces(5)),  # a group photo with an excluded tag
        _photo("g_face", ["r", "a", "b", "c"], 11, _faces(5)),  # a fifth, untagged face: maybe excluded
        _photo("g_named", ["r", "a", "b", "c"], 12, (*_faces(4), FaceBox(0.7, 0.7, 0.1, 0.1, "ex_in"))),
        _photo("small", ["r", "d"], 6, _faces(2, 0.05)),  # faces fill 0.5%: not a close-up
        _photo("alone", ["r"], 7, _faces(1)),
        _photo("others", ["a", "b"], 8, BIG),
    ]
    cur = curate("r", _dataset(photos))
    assert cur.skipped is None
    ids = [p.id for p in cur.photos]
    assert ids == ["c_b", "c_c", "c_hid_in", "c_a", "g_ok_early", "g_ok"]
    assert [p.role for p in cur.photos] == ["closeup"] * 4 + ["group"] * 2
    for pid in ("x_blk_out", "x_blk_in", "x_ex_out", "x_ex_in", "x_hid_out", "g_blk", "g_named"):
        assert cur.dropped[pid].startswith("shows excluded"), pid
    assert "unnamed face" in cur.dropped["g_face"]
    assert "close-up" in cur.dropped["small"]
    assert "others" not in cur.dropped and "others" not in ids
    out = cur.to_dict()
    assert set(out) == {"id", "photos", "skipped"}
    assert out["photos"][0] == {"id": "c_b", "tagged": ["r", "b"], "role": "closeup"}


def test_more_faces_than_tags_is_fine_when_nobody_is_excluded_for_the_recipient() -> None:
    photos = [_photo(f"c{i}", ["a", "b"], i, BIG) for i in range(3)] + [_photo("g", ["a", "b", "r"], 9, _faces(6))]
    cur = curate("a", _dataset(photos), min_photos=4)
    assert cur.skipped is None
    assert cur.photos[-1].id == "g" and cur.photos[-1].role == "group"


def test_near_duplicates_are_dropped_by_hamming_distance() -> None:
    photos = [_photo(f"c{i}", ["r", "a"], i, BIG) for i in range(4)] + [_photo("g", ["r", "a", "b", "c"], 9, _faces(4))]
    base = 0xF0F0_F0F0_1234_5678
    hashes = {"c0": base, "c1": base ^ 0b111, "c2": base ^ ((1 << 40) - 1), "c3": 0, "g": 0xFFFF_FFFF_FFFF_FFFF}
    cur = curate("r", _dataset(photos), hashes=hashes, min_photos=3)
    ids = [p.id for p in cur.photos]
    assert "c1" not in ids and cur.dropped["c1"] == "near-duplicate of c0"
    assert ids == ["c0", "c2", "c3", "g"]
    at_bound = curate("r", _dataset(photos), hashes=hashes, min_photos=3, max_hash_distance=3)  # c1 is 3 bits off
    assert "c1" not in [p.id for p in at_bound.photos]
    stricter = curate("r", _dataset(photos), hashes=hashes, min_photos=3, max_hash_distance=2)
    assert "c1" in [p.id for p in stricter.photos]
    with pytest.raises(InputError, match="64-bit"):
        curate("r", _dataset(photos), hashes={"c0": 1 << 64})


def test_passed_in_faces_override_the_dataset_and_closeups_stay_the_majority() -> None:
    photos = [_photo(f"c{i}", ["r", "a"], i, BIG) for i in range(3)] + [
        _photo(f"g{i}", ["r", "a", "b", "c", "d"], 10 + i, _faces(5)) for i in range(5)
    ]
    cur = curate("r", _dataset(photos))
    roles = [p.role for p in cur.photos]
    assert roles == ["closeup"] * 3 + ["group"] * 2  # 3 close-ups allow at most 2 group photos
    tiny = {f"c{i}": _faces(2, 0.05) for i in range(3)}
    skipped = curate("r", _dataset(photos), faces=tiny)
    assert skipped.skipped is not None and skipped.photos == ()


def test_too_few_photos_is_a_recorded_skip() -> None:
    photos = [_photo("c", ["r", "a"], 0, BIG), _photo("x", ["r", "ex_in"], 1, BIG)]
    cur = curate("r", _dataset(photos))
    assert cur.photos == ()
    assert cur.skipped == "only 1 usable photo (need 4); dropped: 1 shows an excluded person"
    everyone = curate_all(_dataset(photos))
    assert [r["id"] for r in everyone["recipients"]] == PEOPLE
    assert all(r["skipped"] for r in everyone["recipients"])
    with pytest.raises(InputError, match="unknown person"):
        curate("nobody", _dataset(photos))


# --- property: no chosen photo ever shows an excluded person --------------------------------------------------------
@st.composite
def _datasets(draw: st.DrawFn) -> tuple[Dataset, dict[str, int]]:
    ids = [f"p{i}" for i in range(draw(st.integers(2, 7)))]
    pairs = [(a, b) for a in ids for b in ids if a < b]
    friends = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    excl = draw(
        st.lists(
            st.tuples(st.sampled_from(ids), st.sampled_from(ids), st.sampled_from(["blocked", "hidden", "ex"])).filter(
                lambda t: t[0] != t[1]
            ),
            max_size=6,
        )
    )
    photos = []
    hashes = {}
    for i in range(draw(st.integers(0, 14))):
        tagged = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
        faces = draw(
            st.none()
            | st.lists(
                st.builds(
                    FaceBox,
                    st.just(0.0),
                    st.just(0.0),
                    st.floats(0.01, 1.0),
                    st.floats(0.01, 1.0),
                    st.none() | st.sampled_from(ids),
                ),
                max_size=7,
            ).map(tuple)
        )
        photos.append(_photo(f"ph{i}", tagged, i, faces))
        if draw(st.booleans()):
            hashes[f"ph{i}"] = draw(st.integers(0, (1 << 64) - 1))
    ds = Dataset(
        tuple(_person(p) for p in ids),
        tuple(Friendship(a, b, likes=draw(st.integers(0, 5))) for a, b in friends),
        tuple(Exclusion(p, x, r) for p, x, r in excl),  # type: ignore[arg-type]
        tuple(photos),
    )
    return ds, hashes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_datasets(), st.integers(1, 5))
def test_property_no_chosen_photo_shows_an_excluded_person(
    case: tuple[Dataset, dict[str, int]], min_photos: int
) -> None:
    ds, hashes = case
    by_id = {p.id: p for p in ds.photos}
    for person in ds.people:
        # the exclusion rule written out again, independently of exclusions_for
        banned = {e.excluded for e in ds.exclusions if e.person == person.id} | {
            e.person for e in ds.exclusions if e.excluded == person.id and e.reason != "hidden"
        }
        cur = curate(person.id, ds, min_photos=min_photos, max_photos=6, hashes=hashes)
        assert (cur.skipped is None) == bool(cur.photos)
        assert len(cur.photos) <= 6
        for chosen in cur.photos:
            photo = by_id[chosen.id]
            assert not banned & set(photo.tagged)
            assert not banned & {f.person for f in photo.faces or ()}
            if banned and photo.faces is not None:
                assert sum(f.person is None for f in photo.faces) <= len(photo.tagged)
        roles = [p.role for p in cur.photos]
        if "group" in roles:
            assert roles[-1] == "group"
            assert roles == sorted(roles, key=lambda r: r == "group")  # close-ups first
        assert len({p.id for p in cur.photos}) == len(cur.photos)


# --- the loader -------------------------------------------------------------------------------------------------------
def _write(folder: Path, name: str, rows: list[Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _good(folder: Path) -> None:
    _write(
        folder,
        "people.jsonl",
        [
            {"id": "r", "name": "Rae", "tz": "Europe/Paris", "locale": "fr-FR"},
            "",
            {"id": "a", "name": "Ana", "tz": "America/Sao_Paulo", "locale": "pt-BR"},
            {"id": "b", "name": "Bo", "tz": "Asia/Tokyo", "locale": "ja-JP"},
        ],
    )
    _write(folder, "friendships.jsonl", [{"a": "r", "b": "a", "likes": 3, "comments": 1, "cotags": 2}])
    _write(folder, "exclusions.jsonl", [{"person": "r", "excluded": "b", "reason": "hidden"}])
    _write(
        folder,
        "photos.jsonl",
        [
            {"id": "1", "owner": "r", "path": "img/1.jpg", "tagged": ["r", "a"], "taken_at": "2026-05-01T10:00:00"},
            {
                "id": "2",
                "owner": "a",
                "path": "img/2.jpg",
                "tagged": ["r"],
                "taken_at": "2026-05-01T10:00:00Z",
                "faces": [[0.1, 0.1, 0.3, 0.3], {"x": 0.5, "y": 0.5, "w": 0.2, "h": 0.2, "person": "a"}],
            },
        ],
    )


def test_loader_reads_a_good_folder(tmp_path: Path) -> None:
    _good(tmp_path)
    ds = load_dataset(tmp_path)
    assert [p.id for p in ds.people] == ["r", "a", "b"]
    assert ds.friendships == (Friendship("r", "a", 3, 1, 2),)
    assert ds.exclusions == (Exclusion("r", "b", "hidden"),)
    p1, p2 = ds.photos
    assert p1.taken_at.utcoffset() == timedelta(hours=2)  # naive: read in the owner's zone (Paris, summer)
    assert p1.faces is None and p2.faces is not None and p2.faces[1].person == "a"
    assert ds.photo_path(p1) == tmp_path / "img" / "1.jpg"


def test_loader_treats_missing_friendships_and_exclusions_as_empty(tmp_path: Path) -> None:
    _good(tmp_path)
    (tmp_path / "friendships.jsonl").unlink()
    (tmp_path / "exclusions.jsonl").unlink()
    ds = load_dataset(tmp_path)
    assert ds.friendships == () and ds.exclusions == ()
    (tmp_path / "photos.jsonl").unlink()
    with pytest.raises(InputError, match=r"photos\.jsonl:0: file: missing"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    ("name", "row", "expected"),
    [
        ("people.jsonl", {"id": "a", "name": "Again", "tz": "UTC", "locale": "en"}, "people.jsonl:5: id: duplicate"),
        ("people.jsonl", {"id": "z", "name": "Zed", "tz": "Mars/Olympus", "locale": "en"}, "people.jsonl:5: tz:"),
        ("people.jsonl", {"id": "z", "name": "Zed", "tz": "../../etc/passwd", "locale": "en"}, "people.jsonl:5: tz:"),
        ("people.jsonl", {"id": "z", "tz": "UTC", "locale": "en"}, "people.jsonl:5: name: missing"),
        ("people.jsonl", "{not json", "people.jsonl:5: json:"),
        ("exclusions.jsonl", {"person": "a", "excluded": "a", "reason": "blocked"}, "exclusions.jsonl:2: excluded:"),
        ("exclusions.jsonl", {"person": "a", "excluded": "b", "reason": "meh"}, "exclusions.jsonl:2: reason:"),
        ("exclusions.jsonl", {"person": "a", "excluded": "q", "reason": "ex"}, "exclusions.jsonl:2: excluded: unknown"),
        ("friendships.jsonl", {"a": "a", "b": "r"}, "friendships.jsonl:2: b: duplicate friendship"),
        ("friendships.jsonl", {"a": "a", "b": "b", "likes": -1}, "friendships.jsonl:2: likes:"),
        (
            "photos.jsonl",
            {"id": "3", "owner": "r", "path": "x.jpg", "tagged": ["r", "ghost"], "taken_at": "2026-05-01"},
            "photos.jsonl:3: tagged: unknown person 'ghost'",
        ),
        (
            "photos.jsonl",
            {"id": "1", "owner": "r", "path": "x.jpg", "tagged": [], "taken_at": "2026-05-01"},
            "photos.jsonl:3: id: duplicate id '1' (first on line 1)",
        ),
        (
            "photos.jsonl",
            {"id": "3", "owner": "r", "path": "../x.jpg", "tagged": [], "taken_at": "2026-05-01"},
            "photos.jsonl:3: path:",
        ),
        (
            "photos.jsonl",
            {"id": "3", "owner": "r", "path": "x.jpg", "tagged": [], "taken_at": "yesterday"},
            "photos.jsonl:3: taken_at:",
        ),
        (
            "photos.jsonl",
            {
                "id": "3",
                "owner": "r",
                "path": "x.jpg",
                "tagged": [],
                "taken_at": "2026-05-01",
                "faces": [[0.9, 0, 0.5, 0.5]],
            },
            "photos.jsonl:3: faces[0]:",
        ),
    ],
)
def test_loader_errors_name_file_line_and_field(tmp_path: Path, name: str, row: Any, expected: str) -> None:
    _good(tmp_path)
    with (tmp_path / name).open("a") as f:
        f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    with pytest.raises(InputError) as err:
        load_dataset(tmp_path)
    assert f"{tmp_path / name.split(':')[0]}" in err.value.message
    assert expected in err.value.message, err.value.message


def test_curate_imports_no_media_or_array_stack() -> None:
    code = (
        "import sys, framefleet.campaign.curate\n"
        "print(sorted(m for m in ('cv2', 'numpy', 'av', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missed_tagged_face_cannot_hide_an_excluded_bystander() -> None:
    # 2 tags, 2 faces found, but one found face is an excluded bystander and one tagged face was missed:
    # the counts agree, so only names can tell
    faces = (FaceBox(0.1, 0.1, 0.3, 0.4, "r"), FaceBox(0.5, 0.1, 0.3, 0.4))
    photos = [_photo(f"c{i}", ["r", "a"], i, BIG) for i in range(4)] + [_photo("risky", ["r", "a"], 9)]
    cur = curate("r", _dataset(photos), faces={"risky": faces})
    assert "risky" not in [p.id for p in cur.photos] and "unnamed face" in cur.dropped["risky"]
    # without any exclusion the same photo is fine: nobody needs ruling out
    assert "risky" in [p.id for p in curate("a", _dataset(photos), faces={"risky": faces}).photos]


def test_a_photo_tagging_someone_who_is_not_a_friend_is_never_used() -> None:
    photos = [_photo(f"c{i}", ["r", "a"], i, BIG) for i in range(4)] + [_photo("stranger", ["r", "e"], 9, BIG)]
    cur = curate("r", _dataset(photos), min_photos=4)
    assert "stranger" not in [p.id for p in cur.photos]
    assert cur.dropped["stranger"] == "shows people who are not the recipient's friends"
