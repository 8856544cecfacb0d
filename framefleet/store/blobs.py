"""Content-addressed blob storage on the local file system.

A blob's key is derived from its SHA-256 (`ab/cd/abcd…ef.mp4`), so storing the same bytes twice costs
nothing and a key names exactly one content. Files are written under a temporary name in the store's
own scratch folder and renamed into place, so a reader never sees half a blob. Keys are validated
against the key grammar before any path is built: a key can never point outside the blob folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from framefleet._fs import scratch_name
from framefleet.errors import InputError, NotFound

_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}(\.[a-z0-9]{1,8})?$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobRef:
    key: str
    size: int
    sha256: str
    created: bool  # False when identical content was already stored


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _suffix(suffix: str) -> str:
    s = suffix.lower()
    return s if re.fullmatch(r"\.[a-z0-9]{1,8}", s) else ""


class BlobStore:
    def __init__(self, root: str | Path, tmp_dir: str | Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.tmp_dir = Path(tmp_dir).resolve() if tmp_dir is not None else self.root.parent / "tmp"

    def path(self, key: str) -> Path:
        """The file of a stored blob. Raises InputError for a malformed key (never a path outside root)."""
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise InputError(f"invalid blob key {key!r}; keys look like 'ab/cd/<64 hex>.mp4'")
        p = (self.root / key).resolve()
        if not p.is_relative_to(self.root):  # belt and braces: the grammar already excludes it
            raise InputError(f"invalid blob key {key!r}")
        return p

    def open_path(self, key: str) -> Path:
        p = self.path(key)
        if not p.is_file():
            raise NotFound(f"blob {key} is missing from {self.root}; the store is inconsistent")
        return p

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put_file(self, src: str | Path, *, suffix: str | None = None, move: bool = False) -> BlobRef:
        """Store a file's content. `move=True` consumes `src` (it must be on the same file system)."""
        src = Path(src)
        suffix = _suffix(src.suffix if suffix is None else suffix)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if move:
            staged = src
        else:
            staged = self.tmp_dir / scratch_name(suffix)
            try:
                shutil.copyfile(src, staged)
            except BaseException:
                staged.unlink(missing_ok=True)
                raise
        try:
            digest = sha256_file(staged)
            key = f"{digest[:2]}/{digest[2:4]}/{digest}{suffix}"
            final = self.path(key)
            size = staged.stat().st_size
            if final.is_file():
                staged.unlink()
                return BlobRef(key=key, size=size, sha256=digest, created=False)
            final.parent.mkdir(parents=True, exist_ok=True)
            with staged.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(staged, final)
            return BlobRef(key=key, size=size, sha256=digest, created=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                if staged.exists() and staged != src:
                    staged.unlink()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
