"""The campaign dataset: four tables in one folder, loaded into frozen dataclasses and validated.

Each table is one file, ``<table>.jsonl``, ``<table>.csv`` or ``<table>.parquet`` (one of them, never two):

    people       {"id", "name", "tz" (an IANA zone), "locale"}
    friendships  {"a", "b", "likes", "comments", "cotags"}          undirected; optional table
    exclusions   {"person", "excluded", "reason": blocked|hidden|ex}  optional table
    photos       {"id", "owner", "path" (relative to the folder), "tagged": [ids], "taken_at",
                  "faces": optional [{"x", "y", "w", "h", "person"?}] or [[x, y, w, h]]}

CSV cells are text: `tagged` and `faces` hold JSON (``["p1", "p2"]``), an empty `tagged` cell is ``[]``, an
empty `faces` cell means no detection ran and empty counts are 0. Parquet list columns may be native lists or
the same JSON text (`_tables` reads the three formats into the same rows; one validation path follows).

Face boxes are fractions of the frame (0..1), so the share of the frame the faces fill needs no image size;
`person` is optional (a detector rarely knows who a face is). A naive `taken_at` is read in the owner's zone.

Every problem reads ``file:line: field: problem`` (CSV: physical lines, the header is line 1; Parquet: the row
number, from 1). `load_dataset(folder)` raises an `InputError` on the first one. `load_dataset(folder,
strict=False)` drops each bad row instead and keeps its message in `Dataset.problems`; a duplicate id keeps the
first row. Dropping cascades on purpose: a person dropped (say for an unknown zone) turns every friendship,
exclusion and photo that names them into a problem too, so a photo of someone we cannot account for is never
used. Problems with a whole file always raise: no folder, no people or photos table, two formats of one table,
a file that cannot be read or is not UTF-8, no people at all.

`Dataset.photos_of(person)` looks up (in an index built once) the photos that tag a person or name them on a
face box. This module does no image I/O: photos are named, never opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from framefleet.campaign._tables import Row, find_table, read_rows, show
from framefleet.campaign._tables import fail as _fail
from framefleet.errors import InputError

Reason = Literal["blocked", "hidden", "ex"]
REASONS: tuple[Reason, ...] = ("blocked", "hidden", "ex")
TABLES = ("people", "friendships", "exclusions", "photos")
OPTIONAL_TABLES = frozenset({"friendships", "exclusions"})
_NEEDS = "people and photos tables, each as .jsonl, .csv or .parquet; friendships and exclusions are optional"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    tz: str  # an IANA zone name, checked by the loader
    locale: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)


@dataclass(frozen=True)
class Friendship:
    """An undirected tie; the counts are the signals `curate.rank_friends` weighs."""

    a: str
    b: str
    likes: int = 0
    comments: int = 0
    cotags: int = 0

    def other(self, person: str) -> str | None:
        """The friend of `person` in this tie, or None when `person` is not in it."""
        if person == self.a:
            return self.b
        if person == self.b:
            return self.a
        return None


@dataclass(frozen=True)
class Exclusion:
    """`person` does not want `excluded` in their video. `blocked` and `ex` also work the other way round."""

    person: str
    excluded: str
    reason: Reason


@dataclass(frozen=True)
class FaceBox:
    """A detected face as fractions of the frame; `person` only when the detector (or a human) named it."""

    x: float
    y: float
    w: float
    h: float
    person: str | None = None

    @property
    def area(self) -> float:
        return self.w * self.h


@dataclass(frozen=True)
class Photo:
    id: str
    owner: str
    path: str  # relative to the dataset folder
    tagged: tuple[str, ...]
    taken_at: datetime  # always timezone-aware
    faces: tuple[FaceBox, ...] | None = None  # None: no detection was run (not "no faces")


@dataclass(frozen=True)
class Dataset:
    people: tuple[Person, ...]
    friendships: tuple[Friendship, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    photos: tuple[Photo, ...] = ()
    root: Path | None = None
    problems: tuple[str, ...] = ()  # rows that lenient loading dropped, as ``file:line: field: problem``
    _people_by_id: Mapping[str, Person] = field(init=False, repr=False, compare=False)
    _photos_by_person: Mapping[str, tuple[Photo, ...]] = field(init=False, repr=False, compare=False)
    _ties: Mapping[str, tuple[Friendship, ...]] = field(init=False, repr=False, compare=False)
    _excl: Mapping[str, tuple[Exclusion, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_people_by_id", {p.id: p for p in self.people})
        index: dict[str, list[Photo]] = {}
        for photo in self.photos:
            named = dict.fromkeys(photo.tagged)  # ordered set: tagged and on a face counts once
            named.update((f.person, None) for f in photo.faces or () if f.person is not None)
            for person_id in named:
                index.setdefault(person_id, []).append(photo)
        object.__setattr__(self, "_photos_by_person", {k: tuple(v) for k, v in index.items()})
        ties: dict[str, list[Friendship]] = {}
        for f in self.friendships:
            ties.setdefault(f.a, []).append(f)
            ties.setdefault(f.b, []).append(f)
        object.__setattr__(self, "_ties", {k: tuple(v) for k, v in ties.items()})
        excl: dict[str, list[Exclusion]] = {}
        for e in self.exclusions:
            excl.setdefault(e.person, []).append(e)
            if e.excluded != e.person:
                excl.setdefault(e.excluded, []).append(e)
        object.__setattr__(self, "_excl", {k: tuple(v) for k, v in excl.items()})

    def person(self, person_id: str) -> Person | None:
        return self._people_by_id.get(person_id)

    def photos_of(self, person_id: str) -> tuple[Photo, ...]:
        """The photos that tag `person_id` or name them on a face box, in dataset order (an index lookup)."""
        return self._photos_by_person.get(person_id, ())

    def friendships_of(self, person_id: str) -> tuple[Friendship, ...]:
        """The ties `person_id` is in (an index lookup)."""
        return self._ties.get(person_id, ())

    def exclusions_of(self, person_id: str) -> tuple[Exclusion, ...]:
        """The exclusions `person_id` declared or is the target of (an index lookup)."""
        return self._excl.get(person_id, ())

    def photo_path(self, photo: Photo) -> Path:
        """Where a photo lives on disk (the loader made sure it stays inside the folder)."""
        return (self.root or Path()) / photo.path


# --- loading -----------------------------------------------------------------------------------------------------
_T = TypeVar("_T")


class _Problems:
    """Row-level problems: raised at once when strict; otherwise kept for `Dataset.problems` (the row is dropped)."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.messages: list[str] = []

    def report(self, err: InputError) -> None:
        if self.strict:
            raise err
        self.messages.append(err.message)


def _parse_rows(rows: Iterable[Row], parse: Callable[[int, dict[str, Any]], _T], problems: _Problems) -> list[_T]:
    """`parse` each row; one that could not be read, or whose parsing raises `InputError`, goes to `problems`."""
    out: list[_T] = []
    for n, obj in rows:
        if isinstance(obj, InputError):
            problems.report(obj)
            continue
        try:
            out.append(parse(n, obj))
        except InputError as e:
            problems.report(e)
    return out


@dataclass(frozen=True)
class _People:
    """The loaded people, for checking the ids the other tables name."""

    by_id: dict[str, Person]
    file: str  # the people table's file name, for messages
    dropped: frozenset[str]  # ids whose rows lenient loading dropped

    def known(self, path: Path, n: int, key: str, person_id: str) -> str:
        if person_id not in self.by_id:
            why = f"its row in {self.file} was dropped" if person_id in self.dropped else f"not in {self.file}"
            raise _fail(path, n, key, f"unknown person {person_id!r} ({why})")
        return person_id


def _str(path: Path, n: int, obj: dict[str, Any], key: str, *, empty_ok: bool = False) -> str:
    if key not in obj:
        raise _fail(path, n, key, "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise _fail(path, n, key, f"expected a string, got {show(value)}")
    if not empty_ok and not value.strip():
        raise _fail(path, n, key, "must not be empty")
    return value


def _count(path: Path, n: int, obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(path, n, key, f"expected a whole number >= 0, got {show(value)}")
    return value


def _person(path: Path, n: int, obj: dict[str, Any], first_seen: dict[str, int]) -> Person:
    pid = _str(path, n, obj, "id")
    if pid in first_seen:
        raise _fail(path, n, "id", f"duplicate id {pid!r} (first on line {first_seen[pid]})")
    first_seen[pid] = n  # claimed even if this row turns out bad: a later row with the id is not "the" person
    tz = _str(path, n, obj, "tz")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of the zone database ("Europe")
        raise _fail(path, n, "tz", f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Paris')") from None
    return Person(pid, _str(path, n, obj, "name"), tz, _str(path, n, obj, "locale"))


def _load_people(root: Path, problems: _Problems) -> _People:
    path = find_table(root, "people")
    if path is None:
        raise _fail(root / "people.jsonl", 0, "file", f"missing (a dataset folder needs {_NEEDS})")
    first_seen: dict[str, int] = {}
    people = _parse_rows(read_rows(path), lambda n, obj: _person(path, n, obj, first_seen), problems)
    if not people:
        dropped = problems.messages
        why = f" ({len(dropped)} bad row{'s' * (len(dropped) > 1)} dropped; the first: {dropped[0]})" if dropped else ""
        raise InputError(f"{path}:0: file: no people{why}")
    by_id = {p.id: p for p in people}
    return _People(by_id, path.name, frozenset(first_seen.keys() - by_id.keys()))


def _friendship(
    path: Path, n: int, obj: dict[str, Any], people: _People, seen: dict[frozenset[str], int]
) -> Friendship:
    a = people.known(path, n, "a", _str(path, n, obj, "a"))
    b = people.known(path, n, "b", _str(path, n, obj, "b"))
    if a == b:
        raise _fail(path, n, "b", f"{a!r} cannot be their own friend")
    pair = frozenset((a, b))
    if pair in seen:
        raise _fail(path, n, "b", f"duplicate friendship {a!r}-{b!r} (first on line {seen[pair]})")
    seen[pair] = n
    return Friendship(a, b, *(_count(path, n, obj, k) for k in ("likes", "comments", "cotags")))


def _load_friendships(root: Path, people: _People, problems: _Problems) -> list[Friendship]:
    path = find_table(root, "friendships")
    if path is None:
        return []
    seen: dict[frozenset[str], int] = {}
    return _parse_rows(read_rows(path), lambda n, obj: _friendship(path, n, obj, people, seen), problems)


def _exclusion(path: Path, n: int, obj: dict[str, Any], people: _People) -> Exclusion:
    person = people.known(path, n, "person", _str(path, n, obj, "person"))
    excluded = people.known(path, n, "excluded", _str(path, n, obj, "excluded"))
    if person == excluded:
        raise _fail(path, n, "excluded", f"{person!r} cannot exclude themselves")
    reason = _str(path, n, obj, "reason")
    if reason not in REASONS:
        raise _fail(path, n, "reason", f"{reason!r} is not one of {', '.join(REASONS)}")
    return Exclusion(person, excluded, reason)


def _load_exclusions(root: Path, people: _People, problems: _Problems) -> list[Exclusion]:
    path = find_table(root, "exclusions")
    if path is None:
        return []
    return _parse_rows(read_rows(path), lambda n, obj: _exclusion(path, n, obj, people), problems)


def _face(path: Path, n: int, i: int, raw: Any, people: _People) -> FaceBox:
    key = f"faces[{i}]"
    person: str | None = None
    coords: list[Any]
    if isinstance(raw, dict):
        coords = [raw.get(k) for k in ("x", "y", "w", "h")]
        who = raw.get("person")
        if who is not None:
            if not isinstance(who, str):
                raise _fail(path, n, f"{key}.person", f"expected a person id, got {show(who)}")
            person = people.known(path, n, f"{key}.person", who)
    elif isinstance(raw, list):
        coords = list(raw)
    else:
        raise _fail(path, n, key, 'expected {"x", "y", "w", "h"} or [x, y, w, h]')
    if len(coords) != 4 or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords):
        raise _fail(path, n, key, f"expected four numbers x, y, w, h, got {show(raw)}")
    x, y, w, h = (float(c) for c in coords)
    eps = 1e-6
    if not (x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 1 + eps and y + h <= 1 + eps):
        raise _fail(path, n, key, f"box {[x, y, w, h]} is not inside the frame (fractions of it, 0..1)")
    return FaceBox(x, y, w, h, person)


def _tagged(path: Path, n: int, obj: dict[str, Any], people: _People) -> tuple[str, ...]:
    tagged = obj.get("tagged")
    if not isinstance(tagged, list) or not all(isinstance(t, str) for t in tagged):
        raise _fail(path, n, "tagged", f"expected a list of person ids, got {show(tagged)}")
    for t in tagged:
        people.known(path, n, "tagged", t)
    if len(set(tagged)) != len(tagged):
        raise _fail(path, n, "tagged", "a person is tagged twice")
    return tuple(tagged)


def _photo(path: Path, n: int, obj: dict[str, Any], people: _People, first_seen: dict[str, int]) -> Photo:
    pid = _str(path, n, obj, "id")
    if pid in first_seen:
        raise _fail(path, n, "id", f"duplicate id {pid!r} (first on line {first_seen[pid]})")
    first_seen[pid] = n
    owner = people.known(path, n, "owner", _str(path, n, obj, "owner"))
    rel = _str(path, n, obj, "path")
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or Path(rel).is_absolute():
        raise _fail(path, n, "path", f"{rel!r} must be relative to the dataset folder and stay inside it")
    tagged = _tagged(path, n, obj, people)
    stamp = _str(path, n, obj, "taken_at")
    try:
        taken_at = datetime.fromisoformat(stamp)
    except ValueError:
        raise _fail(path, n, "taken_at", f"{stamp!r} is not an ISO 8601 date-time") from None
    if taken_at.tzinfo is None:
        taken_at = taken_at.replace(tzinfo=people.by_id[owner].zone)
    faces_raw = obj.get("faces")
    faces: tuple[FaceBox, ...] | None = None
    if faces_raw is not None:
        if not isinstance(faces_raw, list):
            raise _fail(path, n, "faces", f"expected a list of boxes, got {show(faces_raw)}")
        faces = tuple(_face(path, n, i, f, people) for i, f in enumerate(faces_raw))
    return Photo(pid, owner, rel, tagged, taken_at, faces)


def _load_photos(root: Path, people: _People, problems: _Problems) -> list[Photo]:
    path = find_table(root, "photos")
    if path is None:
        raise _fail(root / "photos.jsonl", 0, "file", f"missing (a dataset folder needs {_NEEDS})")
    first_seen: dict[str, int] = {}
    return _parse_rows(read_rows(path), lambda n, obj: _photo(path, n, obj, people, first_seen), problems)


def load_dataset(folder: str | Path, *, strict: bool = True) -> Dataset:
    """Read and validate a dataset folder (see the module's docstring for the tables and their formats).

    strict: raise `InputError` (``file:line: field: problem``) on the first problem. Otherwise a bad row is
    dropped and its message kept in `Dataset.problems`; problems with a whole file raise either way.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (a dataset folder holds {_NEEDS})")
    problems = _Problems(strict=strict)
    people = _load_people(root, problems)
    friendships = _load_friendships(root, people, problems)
    exclusions = _load_exclusions(root, people, problems)
    photos = _load_photos(root, people, problems)
    return Dataset(
        people=tuple(people.by_id.values()),
        friendships=tuple(friendships),
        exclusions=tuple(exclusions),
        photos=tuple(photos),
        root=root,
        problems=tuple(problems.messages),
    )
