"""File-system helpers: scratch files that are removed whatever happens to the work that used them."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def scratch_file(tmp_dir: str | Path, suffix: str) -> Iterator[Path]:
    """A temporary file path in `tmp_dir` that is always removed afterwards (whoever consumed it)."""
    folder = Path(tmp_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{secrets.token_hex(8)}{suffix}"
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
