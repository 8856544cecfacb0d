"""The campaign dataset loader: JSONL, CSV and Parquet tables, lenient loading and the photos-of index."""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framefleet.campaign.dataset import Dataset, Exclusion, FaceBox, Friendship, Photo, load_dataset
from framefleet.errors import InputError

PEOPLE = [
    {"id": "r", "name": "Rosa", "tz": "Europe/Paris", "locale": "fr"},
    {"id": "a", "name": "Ann, the second", "tz": "UTC", "locale": "en"},  # a comma: CSV must quote it
    {"id": "b", "name": "Bo", "tz": "America/New_York", "locale": "en"},
    {"id": "c", "name": "Cy", "tz": "Asia/Tokyo", "locale": "ja"},
]
FRIENDSHIPS = [{"a": "r", "b": "a", "likes": 3, "comments": 1, "cotags": 2}, {"a": "a", "b": "b"}]
EXCLUSIONS = [  # a cycle of exclusions is a fact about people, not a problem
    {"person": "a", "excluded": "b", "reason": "hidden"},
    {"person": "b", "excluded": "c", "reason": "blocked"},
    {"person": "c", "excluded": "a", "reason": "ex"},
]
PHOTOS = [
    {"id": "1", "owner": "r", "path": "img/1.jpg", "tagged": ["r", "a"], "taken_at": "2026-05-01T10:00:00"},
    {
        "id": "2",
        "owner": "a",
        "path": "img/2.jpg",
        "tagged": [],
        "taken_at": "2026-05-01T10:00:00+00:00",
        "faces": [[0.1, 0.1, 0.3, 0.3], {"x": 0.5, "y": 0.5, "w": 0.2, "h": 0.2, "person": "b"}],
    },
    {"id": "3", "owner": "b", "path": "img/3.jpg", "tagged": ["a"], "taken_at": "2026-05-02T08:00:00", "faces": []},
]
TABLES = {"people": PEOPLE, "friendships": FRIENDSHIPS, "exclusions": EXCLUSIONS, "photos": PHOTOS}


def _jsonl(folder: Path, name: str, rows: list[Any]) -> Path:
    path = folder / f"{name}.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(folder: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    path = folder / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            writer.writerow(json.dumps(r[k]) if isinstance(r.get(k), list) else r.get(k, "") for k in columns)
    return path


def _parquet(folder: Path, name: str, rows: list[dict[str, Any]], json_lists: bool = True) -> Path:
    """Faces as JSON text unless `json_lists` is False (then the rows must already suit one Arrow type)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    data = {k: [r.get(k) for r in rows] for k in columns}
    if json_lists and "faces" in data:
        data["faces"] = [None if v is None else json.dumps(v) for v in data["faces"]]
    path = folder / f"{name}.parquet"
    pq.write_table(pa.table(data), path)
    return path


def _write_all(folder: Path, writer: Any) -> Path:
    folder.mkdir(exist_ok=True)
    for name, rows in TABLES.items():
        writer(folder, name, rows)
    return folder


def _without_root(ds: Dataset) -> Dataset:
    return dataclasses.replace(ds, root=None)


# --- formats -----------------------------------------------------------------------------------------------------
def test_the_same_dataset_loads_equal_from_jsonl_csv_and_parquet(tmp_path: Path) -> None:
    from_jsonl = load_dataset(_write_all(tmp_path / "jsonl", _jsonl))
    from_csv = load_dataset(_write_all(tmp_path / "csv", _csv))
    from_parquet = load_dataset(_write_all(tmp_path / "parquet", _parquet))
    assert _without_root(from_csv) == _without_root(from_jsonl)
    assert _without_root(from_parquet) == _without_root(from_jsonl)
    ds = from_csv
    assert [p.name for p in ds.people] == ["Rosa", "Ann, the second", "Bo", "Cy"]
    assert ds.friendships == (Friendship("r", "a", 3, 1, 2), Friendship("a", "b", 0, 0, 0))  # empty cells: 0
    assert ds.exclusions[2] == Exclusion("c", "a", "ex")
    p1, p2, p3 = ds.photos
    assert p1.faces is None and p1.taken_at.utcoffset() == timedelta(hours=2)  # naive: the owner's zone (Paris)
    assert p2.tagged == () and p2.faces == (FaceBox(0.1, 0.1, 0.3, 0.3), FaceBox(0.5, 0.5, 0.2, 0.2, "b"))
    assert p3.faces == ()  # detection ran and found nobody: not the same as None
    assert ds.problems == ()


def test_parquet_takes_native_lists_structs_and_timestamps(tmp_path: Path) -> None:
    _write_all(tmp_path, _jsonl)
    (tmp_path / "photos.jsonl").unlink()
    boxes = pa.list_(pa.struct([(k, pa.float64()) for k in "xywh"] + [("person", pa.string())]))
    table = pa.table(
        {
            "id": ["1", "2"],
            "owner": ["r", "b"],
            "path": ["1.jpg", "2.jpg"],
            "tagged": pa.array([["a"], []], pa.list_(pa.string())),
            "taken_at": pa.array([datetime(2026, 5, 1, 10), datetime(2026, 5, 1, 10)], pa.timestamp("us")),
            "faces": pa.array(
                [
                    None,
                    [
                        {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2, "person": None},
                        {"x": 0.5, "y": 0.5, "w": 0.25, "h": 0.25, "person": "c"},
                    ],
                ],
                boxes,
            ),
        }
    )
    pq.write_table(table, tmp_path / "photos.parquet")
    p1, p2 = load_dataset(tmp_path).photos
    assert p1.faces is None and p1.tagged == ("a",)
    assert p1.taken_at == datetime(2026, 5, 1, 8, tzinfo=UTC)  # naive timestamp: read in Paris (UTC+2)
    assert p2.faces == (FaceBox(0.1, 0.1, 0.2, 0.2), FaceBox(0.5, 0.5, 0.25, 0.25, "c"))
    assert p2.taken_at.utcoffset() == timedelta(hours=-4)  # New York, summer

    pq.write_table(pa.table({"a": ["r"], "b": ["c"], "likes": [2.0]}), tmp_path / "friendships.parquet")
    (tmp_path / "friendships.jsonl").unlink()
    four_numbers = pa.array([[[0.0, 0.0, 0.5, 0.5]]], pa.list_(pa.list_(pa.float64())))
    photo = {"id": ["1"], "owner": ["r"], "path": ["x.jpg"], "tagged": ['["a"]'], "taken_at": ["2026-05-01"]}
    pq.write_table(pa.table({**photo, "faces": four_numbers}), tmp_path / "photos.parquet")
    ds = load_dataset(tmp_path)
    assert ds.friendships == (Friendship("r", "c", 2, 0, 0),)  # pandas-style float counts
    assert ds.photos[0].tagged == ("a",) and ds.photos[0].faces == (FaceBox(0.0, 0.0, 0.5, 0.5),)


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    _write_all(tmp_path, _parquet)
    (tmp_path / "people.parquet").unlink()
    _parquet(tmp_path, "people", [*PEOPLE[:1], {"id": "z", "name": "Zed", "tz": "Mars/Olympus", "locale": "en"}])
    with pytest.raises(InputError, match=r"people\.parquet:2: tz: unknown time zone 'Mars/Olympus'"):
        load_dataset(tmp_path)
    (tmp_path / "people.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"people\.parquet:0: file: not a readable Parquet file"):
        load_dataset(tmp_path, strict=False)


def test_csv_cells_parse_and_errors_name_file_line_and_field(tmp_path: Path) -> None:
    _write_all(tmp_path, _csv)
    people = tmp_path / "people.csv"
    # a quoted name spanning two physical lines: line numbers stay physical (this row is lines 6-7)
    people.write_text(people.read_text() + 'z,"Zed\nZedson",UTC,en\n', encoding="utf-8")
    assert load_dataset(tmp_path).people[-1].name == "Zed\nZedson"
    cases = [
        (people, "q,Q,Mars/Olympus,en\n", "people.csv:8: tz: unknown time zone"),
        (people, "q,,UTC,en\n", "people.csv:8: name: must not be empty"),
        (tmp_path / "friendships.csv", "r,b,many,,\n", "friendships.csv:4: likes: expected a whole number, got 'many'"),
        (tmp_path / "friendships.csv", "r,b,1.5,,\n", "friendships.csv:4: likes: expected a whole number"),
        (tmp_path / "friendships.csv", "r,b,-1,,\n", "friendships.csv:4: likes: expected a whole number >= 0"),
        (tmp_path / "photos.csv", "4,r,4.jpg,[r],2026-05-01,\n", "photos.csv:5: tagged: not valid JSON"),
        (tmp_path / "photos.csv", '4,r,4.jpg,"[""r""]",2026-05-01,\n', None),  # a good row: the control
        (tmp_path / "photos.csv", '4,r,4.jpg,"""r""",2026-05-01,\n', "photos.csv:5: tagged: expected a list"),
        (tmp_path / "photos.csv", '4,r,4.jpg,,2026-05-01,"[[0.9,0,0.5,0.5]]"\n', "photos.csv:5: faces[0]: box"),
        (tmp_path / "photos.csv", "4,r,4.jpg,,2026-05-01,,extra\n", "photos.csv:5: row: 7 cells"),
    ]
    for path, line, expected in cases:
        before = path.read_text(encoding="utf-8")
        path.write_text(before + line, encoding="utf-8")
        if expected is None:
            assert len(load_dataset(tmp_path).photos) == 4
        else:
            with pytest.raises(InputError) as err:
                load_dataset(tmp_path)
            assert f"{tmp_path}/{expected}" in err.value.message, err.value.message
        path.write_text(before, encoding="utf-8")


def test_csv_header_columns_in_any_order_and_a_bom(tmp_path: Path) -> None:
    _write_all(tmp_path, _csv)
    (tmp_path / "people.csv").write_text("\ufefflocale, tz ,name,id\nfr,Europe/Paris,Rosa,r\n\n,,,\n", encoding="utf-8")
    (tmp_path / "friendships.csv").unlink()
    (tmp_path / "exclusions.csv").unlink()
    (tmp_path / "photos.csv").write_text("id,owner,path,tagged,taken_at\n1,r,1.jpg,,2026-05-01\n", encoding="utf-8")
    ds = load_dataset(tmp_path)
    assert [(p.id, p.tz) for p in ds.people] == [("r", "Europe/Paris")]
    assert ds.photos[0].tagged == () and ds.photos[0].faces is None


def test_two_formats_of_one_table_are_an_error(tmp_path: Path) -> None:
    _write_all(tmp_path, _jsonl)
    _csv(tmp_path, "exclusions", EXCLUSIONS)
    for strict in (True, False):
        with pytest.raises(
            InputError, match=r"exclusions\.jsonl:0: file: exclusions\.jsonl and exclusions\.csv .*keep"
        ):
            load_dataset(tmp_path, strict=strict)


# --- lenient loading ---------------------------------------------------------------------------------------------
BAD_ROWS = [
    ("people", {"id": "z", "name": "Zed", "tz": "Mars/Olympus", "locale": "en"}, "people.jsonl:5: tz: unknown"),
    ("people", {"id": "z", "name": "Zed", "tz": "Europe", "locale": "en"}, "people.jsonl:5: tz: unknown"),
    ("people", {"id": "a", "name": "Again", "tz": "UTC", "locale": "en"}, "people.jsonl:5: id: duplicate id 'a'"),
    ("people", "{not json", "people.jsonl:5: json: not valid JSON"),
    ("people", [1, 2], "people.jsonl:5: json: expected an object"),
    ("people", {"id": "z", "tz": "UTC", "locale": "en"}, "people.jsonl:5: name: missing"),
    ("friendships", {"a": "r", "b": "r"}, "friendships.jsonl:3: b: 'r' cannot be their own friend"),
    ("friendships", {"a": "b", "b": "a"}, "friendships.jsonl:3: b: duplicate friendship"),
    ("friendships", {"a": "r", "b": "ghost"}, "friendships.jsonl:3: b: unknown person 'ghost' (not in people.jsonl)"),
    ("exclusions", {"person": "a", "excluded": "a", "reason": "ex"}, "exclusions.jsonl:4: excluded: 'a' cannot"),
    ("exclusions", {"person": "a", "excluded": "r", "reason": "meh"}, "exclusions.jsonl:4: reason: 'meh'"),
    ("exclusions", {"person": "ghost", "excluded": "r", "reason": "ex"}, "exclusions.jsonl:4: person: unknown"),
    (
        "photos",
        {"id": "4", "owner": "r", "path": "4.jpg", "tagged": ["r", "ghost"], "taken_at": "2026-05-01"},
        "photos.jsonl:4: tagged: unknown person 'ghost'",
    ),
    (
        "photos",
        {"id": "1", "owner": "r", "path": "4.jpg", "tagged": [], "taken_at": "2026-05-01"},
        "photos.jsonl:4: id: duplicate id '1' (first on line 1)",
    ),
    ("photos", {"id": "4", "owner": "ghost", "path": "4.jpg", "tagged": [], "taken_at": "2026-05-01"}, "owner:"),
    ("photos", {"id": "4", "owner": "r", "path": "4.jpg", "tagged": [], "taken_at": "soon"}, "taken_at: 'soon'"),
    (
        "photos",
        {"id": "4", "owner": "r", "path": "4.jpg", "tagged": [], "taken_at": "2026-05-01", "faces": [[0, 0, 0, 1]]},
        "photos.jsonl:4: faces[0]: box",
    ),
    (
        "photos",
        {
            "id": "4",
            "owner": "r",
            "path": "4.jpg",
            "tagged": [],
            "taken_at": "2026-05-01",
            "faces": [{"x": 0, "y": 0, "w": 0.1, "h": 0.1, "person": "ghost"}],
        },
        "photos.jsonl:4: faces[0].person: unknown person 'ghost'",
    ),
]


@pytest.mark.parametrize(("table", "row", "expected"), BAD_ROWS)
def test_lenient_drops_a_bad_row_and_strict_raises_the_same_message(
    tmp_path: Path, table: str, row: Any, expected: str
) -> None:
    _write_all(tmp_path, _jsonl)
    _jsonl(tmp_path, table, [*TABLES[table], row])
    good = _without_root(load_dataset(_write_all(tmp_path / "good", _jsonl)))

    ds = load_dataset(tmp_path, strict=False)
    assert len(ds.problems) == 1 and expected in ds.problems[0], ds.problems
    assert ds.problems[0].startswith(f"{tmp_path / table}.jsonl:")
    assert dataclasses.replace(_without_root(ds), problems=()) == good  # the bad row dropped, the rest all kept

    with pytest.raises(InputError) as err:
        load_dataset(tmp_path)
    assert err.value.message == ds.problems[0]


def test_dropping_a_person_drops_every_row_that_names_them(tmp_path: Path) -> None:
    _write_all(tmp_path, _jsonl)
    _jsonl(tmp_path, "people", [*PEOPLE, {"id": "z", "name": "Zed", "tz": "Nowhere/City", "locale": "en"}])
    _jsonl(tmp_path, "friendships", [*FRIENDSHIPS, {"a": "z", "b": "r"}])
    _jsonl(tmp_path, "exclusions", [*EXCLUSIONS, {"person": "r", "excluded": "z", "reason": "blocked"}])
    face = {"x": 0.1, "y": 0.1, "w": 0.1, "h": 0.1, "person": "z"}
    extra = [
        {"id": "4", "owner": "z", "path": "4.jpg", "tagged": [], "taken_at": "2026-05-01"},
        {"id": "5", "owner": "r", "path": "5.jpg", "tagged": ["z"], "taken_at": "2026-05-01"},
        {"id": "6", "owner": "r", "path": "6.jpg", "tagged": ["r"], "taken_at": "2026-05-01", "faces": [face]},
    ]
    _jsonl(tmp_path, "photos", [*PHOTOS, *extra])
    ds = load_dataset(tmp_path, strict=False)
    assert [p.id for p in ds.people] == ["r", "a", "b", "c"]
    assert len(ds.friendships) == 2 and len(ds.exclusions) == 3 and [p.id for p in ds.photos] == ["1", "2", "3"]
    assert len(ds.problems) == 6
    assert "people.jsonl:5: tz: unknown time zone 'Nowhere/City'" in ds.problems[0]
    dropped = "unknown person 'z' (its row in people.jsonl was dropped)"
    assert all(dropped in p for p in ds.problems[1:]), ds.problems
    assert [p.split(": ")[1] for p in ds.problems[1:]] == ["a", "excluded", "owner", "tagged", "faces[0].person"]
    assert ds.photos_of("z") == ()


def test_a_duplicate_keeps_the_first_row_even_when_the_first_is_bad(tmp_path: Path) -> None:
    _write_all(tmp_path, _jsonl)
    extra = [
        {"id": "z", "name": "Zed", "tz": "Bad/Zone", "locale": "en"},
        {"id": "z", "name": "Zed again", "tz": "UTC", "locale": "en"},
    ]
    _jsonl(tmp_path, "people", [*PEOPLE, *extra])
    ds = load_dataset(tmp_path, strict=False)
    assert ds.person("z") is None
    assert "people.jsonl:6: id: duplicate id 'z' (first on line 5)" in ds.problems[1]


def test_file_level_problems_raise_even_when_lenient(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        load_dataset(tmp_path / "nope", strict=False)
    _write_all(tmp_path, _jsonl)
    (tmp_path / "photos.jsonl").unlink()
    with pytest.raises(InputError, match=r"photos\.jsonl:0: file: missing"):
        load_dataset(tmp_path, strict=False)
    _write_all(tmp_path, _jsonl)
    (tmp_path / "exclusions.jsonl").write_bytes(b'{"person": "\xff"}\n')
    with pytest.raises(InputError, match=r"exclusions\.jsonl:0: file: not UTF-8"):
        load_dataset(tmp_path, strict=False)
    _write_all(tmp_path, _jsonl)
    _jsonl(tmp_path, "people", [{"id": "z", "name": "Zed", "tz": "Bad/Zone", "locale": "en"}])
    with pytest.raises(
        InputError, match=r"people\.jsonl:0: file: no people \(1 bad row dropped; the first: .*Bad/Zone"
    ):
        load_dataset(tmp_path, strict=False)


# --- the photos-of index -----------------------------------------------------------------------------------------
def test_photos_of_finds_tagged_and_face_named_photos_in_order(tmp_path: Path) -> None:
    ds = load_dataset(_write_all(tmp_path, _jsonl))
    assert [p.id for p in ds.photos_of("a")] == ["1", "3"]
    assert [p.id for p in ds.photos_of("b")] == ["2"]  # only on a face box; owning photo 3 is not being in it
    assert [p.id for p in ds.photos_of("r")] == ["1"]
    assert ds.photos_of("c") == () and ds.photos_of("ghost") == ()


def test_photos_of_counts_a_photo_once_and_follows_the_constructor() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    both = Photo("p", "x", "p.jpg", ("x",), at, (FaceBox(0, 0, 0.5, 0.5, "x"), FaceBox(0.5, 0.5, 0.5, 0.5, "x")))
    ds = Dataset(people=(), photos=(both, Photo("q", "x", "q.jpg", (), at), Photo("s", "x", "s.jpg", ("x",), at)))
    assert [p.id for p in ds.photos_of("x")] == ["p", "s"]
    assert ds == Dataset(people=(), photos=ds.photos)  # the index takes no part in equality
