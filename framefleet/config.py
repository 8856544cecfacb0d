"""Settings: defaults that work on one machine, overridable by `FRAMEFLEET_*` environment variables.

| variable                       | default                                  |
|--------------------------------|------------------------------------------|
| FRAMEFLEET_HOME                | the per-user data folder (platformdirs)  |
| FRAMEFLEET_DATABASE_URL        | sqlite:///$FRAMEFLEET_HOME/framefleet.db |
| FRAMEFLEET_MAX_IMAGE_PIXELS    | 100_000_000 (decompression-bomb guard)   |
| FRAMEFLEET_LADDER              | 1080,720,480,360                         |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from framefleet.errors import InputError

DEFAULT_LADDER: tuple[int, ...] = (1080, 720, 480, 360)
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000


def parse_ladder(text: str) -> tuple[int, ...]:
    """Parse "1080,720,480" into rungs, tallest first; reject anything that is not a positive even height."""
    rungs: list[int] = []
    for part in text.split(","):
        part = part.strip().lower().removesuffix("p")
        if not part:
            continue
        if not part.isdigit() or int(part) < 16 or int(part) % 2:
            raise InputError(
                f"ladder rung {part!r} is not a valid height; give even pixel heights ≥ 16 like '1080,720,480'"
            )
        rungs.append(int(part))
    if not rungs:
        raise InputError("the ladder is empty; give at least one rung height such as '720'")
    return tuple(sorted(set(rungs), reverse=True))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise InputError(f"{name}={raw!r} is not an integer; unset it or give a whole number") from None
    if value <= 0:
        raise InputError(f"{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    ladder: tuple[int, ...] = DEFAULT_LADDER

    @property
    def blob_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space for work in progress; always on the blob folder's filesystem so a finished
        file can be renamed into place atomically."""
        return self.home / "tmp"

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("FRAMEFLEET_HOME") or platformdirs.user_data_dir("framefleet")).expanduser()
        url = os.environ.get("FRAMEFLEET_DATABASE_URL") or f"sqlite:///{home / 'framefleet.db'}"
        ladder_env = os.environ.get("FRAMEFLEET_LADDER")
        return cls(
            home=home,
            database_url=url,
            max_image_pixels=_env_int("FRAMEFLEET_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
            ladder=parse_ladder(ladder_env) if ladder_env else DEFAULT_LADDER,
        )
