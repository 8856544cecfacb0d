"""File-system helpers: write to a temporary name beside the target, rename into place on success."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path, *, tmp_dir: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path; on normal exit rename it onto `target`, on error delete it.

    The temporary lives in `tmp_dir` (which must be on the target's file system for the rename to be
    atomic) or beside the target, and keeps the target's suffix so FFmpeg picks the right muxer.
    """
    target = Path(target)
    folder = Path(tmp_dir) if tmp_dir is not None else target.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{secrets.token_hex(8)}{target.suffix}"
    try:
        yield tmp
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


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
