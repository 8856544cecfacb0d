"""The campaign dataset: four JSONL files in one folder, loaded into frozen dataclasses and validated.

    people.jsonl       {"id", "name", "tz" (an IANA zone), "locale"}
    friendships.jsonl  {"a", "b", "likes", "comments", "cotags"}          undirected; optional file
    exclusions.jsonl   {"person", "excluded", "reason": blocked|hidden|ex}  optional file
    photos.jsonl       {"id", "owner", "path" (relative to the folder), "tagged": [ids], "taken_at",
                        "faces": optional [{"x", "y", "w", "h", "person"?}] or [[x, y, w, h]]}

Face boxes are fractions of the frame (0..1), so the share of the frame the faces fill needs no image size;
`person` is optional (a detector rarely knows who a face is). A naive `taken_at` is read in the owner's zone.

Every problem is an `InputError` whose message reads ``file:line: field: problem``. This module only reads
JSONL; CSV and Parquet inputs are not supported yet. It does no image I/O: photos are named, never opened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from framefleet.errors import InputError

Reason = Literal["blocked", "hidden", "ex"]
REASONS: tuple[Reason, ...] = ("blocked", "hidden", "ex")
FILES = ("people.jsonl", "friendships.jsonl", "exclusions.jsonl", "photos.jsonl")
OPTIONAL_FILES = frozenset({"friendships.jsonl", "exclusions.jsonl"})


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
    _people_by_id: Mapping[str, Person] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_people_by_id", {p.id: p for p in self.people})

    def person(self, person_id: str) -> Person | None:
        return self._people_by_id.get(person_id)

    def photo_path(self, photo: Photo) -> Path:
        """Where a photo lives on disk (the loader made sure it stays inside the folder)."""
        return (self.root or Path()) / photo.path


# --- loading -----------------------------------------------------------------------------------------------------
def _fail(path: Path, line: int, fieldname: str, problem: str) -> InputError:
    return InputError(f"{path}:{line}: {fieldname}: {problem}")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; blank lines still count for the numbering."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path.name in OPTIONAL_FILES:
            return
        raise InputError(f"{path}:0: file: missing (a dataset folder needs {', '.join(FILES)})") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}:0: file: not UTF-8 ({e.reason})") from None
    except OSError as e:
        raise InputError(f"{path}:0: file: cannot be read ({e.strerror})") from None
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _fail(path, n, "json", f"not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise _fail(path, n, "json", f"expected an object, got {type(obj).__name__}")
        yield n, obj


def _str(path: Path, n: int, obj: dict[str, Any], key: str, *, empty_ok: bool = False) -> str:
    if key not in obj:
        raise _fail(path, n, key, "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise _fail(path, n, key, f"expected a string, got {json.dumps(value)}")
    if not empty_ok and not value.strip():
        raise _fail(path, n, key, "must not be empty")
    return value


def _count(path: Path, n: int, obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(path, n, key, f"expected a whole number >= 0, got {json.dumps(value)}")
    return value


def _known(path: Path, n: int, key: str, person_id: str, people: Mapping[str, Person]) -> str:
    if person_id not in people:
        raise _fail(path, n, key, f"unknown person {person_id!r} (not in people.jsonl)")
    return person_id


def _load_people(path: Path) -> dict[str, Person]:
    people: dict[str, Person] = {}
    first_seen: dict[str, int] = {}
    for n, obj in _rows(path):
        pid = _str(path, n, obj, "id")
        if pid in people:
            raise _fail(path, n, "id", f"duplicate id {pid!r} (first on line {first_seen[pid]})")
        tz = _str(path, n, obj, "tz")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise _fail(path, n, "tz", f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Paris')") from None
        people[pid] = Person(pid, _str(path, n, obj, "name"), tz, _str(path, n, obj, "locale"))
        first_seen[pid] = n
    if not people:
        raise InputError(f"{path}:0: file: no people")
    return people


def _load_friendships(path: Path, people: Mapping[str, Person]) -> list[Friendship]:
    out: list[Friendship] = []
    seen: dict[frozenset[str], int] = {}
    for n, obj in _rows(path):
        a = _known(path, n, "a", _str(path, n, obj, "a"), people)
        b = _known(path, n, "b", _str(path, n, obj, "b"), people)
        if a == b:
            raise _fail(path, n, "b", f"{a!r} cannot be their own friend")
        pair = frozenset((a, b))
        if pair in seen:
            raise _fail(path, n, "b", f"duplicate friendship {a!r}-{b!r} (first on line {seen[pair]})")
        seen[pair] = n
        out.append(Friendship(a, b, *(_count(path, n, obj, k) for k in ("likes", "comments", "cotags"))))
    return out


def _load_exclusions(path: Path, people: Mapping[str, Person]) -> list[Exclusion]:
    out: list[Exclusion] = []
    for n, obj in _rows(path):
        person = _known(path, n, "person", _str(path, n, obj, "person"), people)
        excluded = _known(path, n, "excluded", _str(path, n, obj, "excluded"), people)
        if person == excluded:
            raise _fail(path, n, "excluded", f"{person!r} cannot exclude themselves")
        reason = _str(path, n, obj, "reason")
        if reason not in REASONS:
            raise _fail(path, n, "reason", f"{reason!r} is not one of {', '.join(REASONS)}")
        out.append(Exclusion(person, excluded, reason))
    return out


def _face(path: Path, n: int, i: int, raw: Any, people: Mapping[str, Person]) -> FaceBox:
    key = f"faces[{i}]"
    person: str | None = None
    coords: list[Any]
    if isinstance(raw, dict):
        coords = [raw.get(k) for k in ("x", "y", "w", "h")]
        who = raw.get("person")
        if who is not None:
            if not isinstance(who, str):
                raise _fail(path, n, f"{key}.person", f"expected a person id, got {json.dumps(who)}")
            person = _known(path, n, f"{key}.person", who, people)
    elif isinstance(raw, list):
        coords = list(raw)
    else:
        raise _fail(path, n, key, 'expected {"x", "y", "w", "h"} or [x, y, w, h]')
    if len(coords) != 4 or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords):
        raise _fail(path, n, key, f"expected four numbers x, y, w, h, got {json.dumps(raw)}")
    x, y, w, h = (float(c) for c in coords)
    eps = 1e-6
    if not (x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 1 + eps and y + h <= 1 + eps):
        raise _fail(path, n, key, f"box {[x, y, w, h]} is not inside the frame (fractions of it, 0..1)")
    return FaceBox(x, y, w, h, person)


def _load_photos(path: Path, people: Mapping[str, Person]) -> list[Photo]:
    out: list[Photo] = []
    first_seen: dict[str, int] = {}
    for n, obj in _rows(path):
        pid = _str(path, n, obj, "id")
        if pid in first_seen:
            raise _fail(path, n, "id", f"duplicate id {pid!r} (first on line {first_seen[pid]})")
        first_seen[pid] = n
        owner = _known(path, n, "owner", _str(path, n, obj, "owner"), people)
        rel = _str(path, n, obj, "path")
        pure = PurePosixPath(rel.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or Path(rel).is_absolute():
            raise _fail(path, n, "path", f"{rel!r} must be relative to the dataset folder and stay inside it")
        tagged_raw = obj.get("tagged")
        if not isinstance(tagged_raw, list) or not all(isinstance(t, str) for t in tagged_raw):
            raise _fail(path, n, "tagged", f"expected a list of person ids, got {json.dumps(tagged_raw)}")
        for t in tagged_raw:
            _known(path, n, "tagged", t, people)
        if len(set(tagged_raw)) != len(tagged_raw):
            raise _fail(path, n, "tagged", "a person is tagged twice")
        stamp = _str(path, n, obj, "taken_at")
        try:
            taken_at = datetime.fromisoformat(stamp)
        except ValueError:
            raise _fail(path, n, "taken_at", f"{stamp!r} is not an ISO 8601 date-time") from None
        if taken_at.tzinfo is None:
            taken_at = taken_at.replace(tzinfo=people[owner].zone)
        faces_raw = obj.get("faces")
        faces: tuple[FaceBox, ...] | None = None
        if faces_raw is not None:
            if not isinstance(faces_raw, list):
                raise _fail(path, n, "faces", f"expected a list of boxes, got {json.dumps(faces_raw)}")
            faces = tuple(_face(path, n, i, f, people) for i, f in enumerate(faces_raw))
        out.append(Photo(pid, owner, rel, tuple(tagged_raw), taken_at, faces))
    return out


def load_dataset(folder: str | Path) -> Dataset:
    """Read and validate a dataset folder; raises `InputError` (``file:line: field: problem``) on bad input."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (a dataset folder holds {', '.join(FILES)})")
    people = _load_people(root / "people.jsonl")
    return Dataset(
        people=tuple(people.values()),
        friendships=tuple(_load_friendships(root / "friendships.jsonl", people)),
        exclusions=tuple(_load_exclusions(root / "exclusions.jsonl", people)),
        photos=tuple(_load_photos(root / "photos.jsonl", people)),
        root=root,
    )
