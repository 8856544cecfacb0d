"""File-system helpers: scratch files and folders that are removed whatever happens to the work that used them,
and the sweep that removes those a killed process (SIGKILL, power loss) could not.

Every scratch name carries its owner, `p<pid>.<host hash>`, so a later process can tell a dead owner's leftovers
from a live one's work in progress: `sweep_scratch` removes an entry only when its owner ran on this host and is
no longer alive. Entries made before names carried an owner are removed once they are a day old.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# The scratch names framefleet makes in $FRAMEFLEET_HOME/tmp: task folders and `.tmp-` files (blob staging too).
SCRATCH_PREFIXES = ("enhance-", "animate-", "gain-", ".tmp-")
_OWNED = re.compile(r"^(?:enhance|animate|gain|\.tmp)-p(?P<pid>\d+)\.(?P<host>[0-9a-f]{8})-")
_UNOWNED_MAX_AGE_S = 24 * 3600


def host_id() -> str:
    """A short, file-name-safe id of this host (hostnames may be long or hold any character)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def owner_tag() -> str:
    """`p<pid>.<host id>`: who made a scratch entry, read back by `sweep_scratch`."""
    return f"p{os.getpid()}.{host_id()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (a zombie counts; a reused pid reads as alive, which
    only ever keeps leftovers longer, never removes live work)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


@contextlib.contextmanager
def scratch_file(tmp_dir: str | Path, suffix: str) -> Iterator[Path]:
    """A temporary file path in `tmp_dir` that is always removed afterwards (whoever consumed it)."""
    folder = Path(tmp_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / scratch_name(suffix)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def scratch_name(suffix: str = "") -> str:
    """A fresh `.tmp-` file name carrying this process as its owner."""
    return f".tmp-{owner_tag()}-{secrets.token_hex(8)}{suffix}"


@contextlib.contextmanager
def scratch_dir(tmp_dir: str | Path, prefix: str) -> Iterator[Path]:
    """A temporary folder `<prefix>-<owner>-<random>` in `tmp_dir`, removed with its content afterwards."""
    folder = Path(tmp_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-{owner_tag()}-", dir=folder) as d:
        yield Path(d)


def sweep_scratch(tmp_dir: str | Path, *, now: float | None = None) -> list[str]:
    """Remove scratch entries in `tmp_dir` left by dead processes of this host (and unowned ones over a day
    old); return their names. Entries of live processes and of other hosts are kept."""
    folder = Path(tmp_dir)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    me, removed = host_id(), []
    for entry in folder.iterdir():
        if not entry.name.startswith(SCRATCH_PREFIXES):
            continue
        m, stale = _OWNED.match(entry.name), False
        if m is not None:
            stale = m["host"] == me and not pid_alive(int(m["pid"]))
        else:
            with contextlib.suppress(FileNotFoundError):
                stale = now - entry.lstat().st_mtime > _UNOWNED_MAX_AGE_S
        if not stale:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return sorted(removed)
