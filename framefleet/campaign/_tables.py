"""Reading one campaign table from JSONL, CSV or Parquet as ``(line, row)`` pairs; `dataset` validates the rows.

Every format comes out the same way: a dict with the JSON types the validators expect, or the `InputError` of a
row that could not even be read (a bad JSON line, a non-integer count in a CSV cell). A row-level problem is
yielded, not raised, so that lenient loading can drop the row and carry on; a file-level problem (unreadable,
not UTF-8, not Parquet, a broken CSV header) is raised.

Line numbers: JSONL and CSV count physical lines (a CSV header is line 1; a quoted cell may span lines, and the
row is numbered by its first); Parquet rows are numbered from 1.

CSV cells are text: `tagged` and `faces` hold JSON (``["p1", "p2"]``); an empty `tagged` cell is ``[]`` and an
empty `faces` cell means no detection ran; empty counts are 0. Parquet list columns may be native lists (faces
as lists of ``{x, y, w, h, person}`` structs or of four numbers) or the same JSON text; nulls mean "not given";
timestamps become ISO 8601 text, so a naive one is read in the owner's zone as in JSONL.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from framefleet.errors import InputError

FORMATS = (".jsonl", ".csv", ".parquet")
LIST_COLUMNS = frozenset({"tagged", "faces"})
INT_COLUMNS = frozenset({"likes", "comments", "cotags"})
_TEXT_COLUMNS = LIST_COLUMNS | INT_COLUMNS  # columns whose text (CSV, or a Parquet string) holds another type
_EXAMPLES = {"tagged": '["p1", "p2"]', "faces": '[[0.1, 0.2, 0.3, 0.3]] or [{"x": 0.1, ..., "person": "p1"}]'}
_INT = re.compile(r"\s*[+-]?\d+\s*")
_ABSENT: Any = object()  # a cell that means "not given": the key is left out of the row

Row = tuple[int, dict[str, Any] | InputError]


def fail(path: Path, line: int, fieldname: str, problem: str) -> InputError:
    return InputError(f"{path}:{line}: {fieldname}: {problem}")


def show(value: Any) -> str:
    """A value as it would read in JSON (values from Parquet need not be JSON types)."""
    return json.dumps(value, default=str)


def find_table(root: Path, name: str) -> Path | None:
    """The one file holding table `name` (``name.jsonl``, ``.csv`` or ``.parquet``), or None; two are an error."""
    present = [root / f"{name}{ext}" for ext in FORMATS if (root / f"{name}{ext}").exists()]
    if len(present) > 1:
        names = ", ".join(p.name for p in present[:-1]) + f" and {present[-1].name}"
        raise fail(present[0], 0, "file", f"{names} hold the same table: keep only one of them")
    return present[0] if present else None


def read_rows(path: Path) -> Iterator[Row]:
    """(line, row or its problem) for each row of a table file, whatever its format (by its suffix)."""
    if path.suffix == ".csv":
        return _csv_rows(path)
    if path.suffix == ".parquet":
        return _parquet_rows(path)
    return _jsonl_rows(path)


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        with path.open(encoding=encoding, newline="") as f:  # newline="": a CSV cell may hold a "\r\n" of its own
            return f.read()
    except UnicodeDecodeError as e:
        raise fail(path, 0, "file", f"not UTF-8 ({e.reason})") from None
    except OSError as e:
        raise fail(path, 0, "file", f"cannot be read ({e.strerror or e})") from None


def _jsonl_rows(path: Path) -> Iterator[Row]:
    """Each non-blank line as an object; blank lines still count for the numbering."""
    for n, raw in enumerate(_read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            yield n, fail(path, n, "json", f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            yield n, fail(path, n, "json", f"expected an object, got {type(obj).__name__}")
            continue
        yield n, obj


def _from_text(key: str, text: str) -> Any:
    """A CSV cell (or Parquet text) as the value the validators expect; ValueError says what is wrong with it."""
    if key in LIST_COLUMNS:
        if not text.strip():
            return [] if key == "tagged" else _ABSENT
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e.msg} at column {e.colno}); write e.g. {_EXAMPLES[key]}") from None
    if key in INT_COLUMNS:
        if not text.strip():
            return _ABSENT
        if not _INT.fullmatch(text):
            raise ValueError(f"expected a whole number, got {text!r}")
        return int(text)
    return text


def _csv_rows(path: Path) -> Iterator[Row]:
    text = _read_text(path, encoding="utf-8-sig")  # -sig: spreadsheets often start the file with a BOM
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    last = 0  # the physical line the previous record ended on
    try:
        for cells in reader:
            n, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                dupes = sorted({c for c in header if header.count(c) > 1})
                if dupes:
                    raise fail(path, n, "header", f"column {dupes[0]!r} appears twice")
                continue
            if len(cells) > len(header):
                yield n, fail(path, n, "row", f"{len(cells)} cells but the header (line 1) names {len(header)}")
                continue
            yield n, _csv_row(path, n, dict(zip(header, cells, strict=False)))
    except csv.Error as e:
        raise fail(path, reader.line_num, "file", f"not valid CSV ({e})") from None


def _csv_row(path: Path, n: int, cells: dict[str, str]) -> dict[str, Any] | InputError:
    row: dict[str, Any] = {}
    for key, text in cells.items():
        try:
            value = _from_text(key, text)
        except ValueError as e:
            return fail(path, n, key, str(e))
        if value is not _ABSENT:
            row[key] = value
    return row


def _parquet_rows(path: Path) -> Iterator[Row]:
    try:  # imported here: pyarrow brings numpy, which `curate` (and so this package) must not pull in
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise fail(path, 0, "file", "reading Parquet needs pyarrow (pip install 'pyarrow>=15')") from None
    try:
        records: list[dict[str, Any]] = pq.read_table(str(path)).to_pylist()
    except OSError as e:
        raise fail(path, 0, "file", f"cannot be read ({e})") from None
    except Exception as e:  # pyarrow's ArrowInvalid and friends: not a Parquet file, or a damaged one
        raise fail(path, 0, "file", f"not a readable Parquet file ({e})") from None
    for n, record in enumerate(records, start=1):
        yield n, _parquet_row(path, n, record)


def _parquet_row(path: Path, n: int, record: dict[str, Any]) -> dict[str, Any] | InputError:
    row: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            continue
        if isinstance(value, str) and key in _TEXT_COLUMNS:
            try:
                value = _from_text(key, value)
            except ValueError as e:
                return fail(path, n, key, str(e))
        elif key in INT_COLUMNS and isinstance(value, float) and value.is_integer():
            value = int(value)  # pandas stores an int column with gaps as floats
        elif isinstance(value, datetime | date):
            value = value.isoformat()
        if value is not _ABSENT:
            row[key] = value
    return row
