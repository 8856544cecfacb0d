"""What curation needs from the pixels: face boxes (OpenCV's Haar cascade) and a 64-bit perceptual hash (pHash).

`analyse_photos` opens each distinct photo file once (many photos may share a file), in a thread pool (OpenCV
releases the GIL), and records unreadable files with a reason instead of failing the campaign. The results
are plain values that `curate.curate` takes (`faces=`, `hashes=`), so curation itself stays pure.

Face detection runs only for photos whose `faces` the dataset does not already give (a platform's own face
index is better than a cascade); pass `detect="all"` to run it everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from framefleet.campaign.dataset import Dataset, FaceBox, Photo
from framefleet.errors import FramefleetError
from framefleet.media.image import load_image

DETECT_LONG_SIDE = 480  # the cascade's cost grows with pixels; faces worth a close-up survive this size
CASCADE = "haarcascade_frontalface_default.xml"
_local = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """One classifier per thread: detectMultiScale keeps scratch state in the object."""
    c = getattr(_local, "cascade", None)
    if c is None:
        data = getattr(cv2, "data", None)
        if data is None:  # opencv-python-headless 5.x dropped the bundled cascades
            raise FramefleetError("OpenCV has no bundled Haar cascades; install opencv-python-headless 4.x")
        c = cv2.CascadeClassifier(str(Path(data.haarcascades) / CASCADE))
        if c.empty():
            raise FramefleetError(f"cannot load {CASCADE} from {data.haarcascades}")
        _local.cascade = c
    return c


def detect_faces(rgb: np.ndarray, *, min_face_frac: float = 0.04) -> tuple[FaceBox, ...]:
    """Frontal faces in an RGB uint8 image, as fractions of the frame, largest first."""
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_LONG_SIDE / max(h, w))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # (H, W)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    gh, gw = gray.shape
    side = max(20, int(min_face_frac * min(gh, gw)))
    found = _cascade().detectMultiScale(gray, scaleFactor=1.15, minNeighbors=5, minSize=(side, side))
    boxes = [FaceBox(x / gw, y / gh, bw / gw, bh / gh) for x, y, bw, bh in np.asarray(found).reshape(-1, 4).tolist()]
    return tuple(sorted(boxes, key=lambda b: -b.area))


def phash(rgb: np.ndarray) -> int:
    """64-bit DCT hash: the 8x8 lowest frequencies of a 32x32 grey thumbnail, each bit above the median or not.

    Same construction as `imagehash.phash` (median over the 8x8 block, DC included); robust to rescaling,
    recompression and small colour changes, so near-identical photos land within a few bits of each other.
    """
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # (H, W)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)  # (32, 32)
    low = cv2.dct(small)[:8, :8]  # (8, 8)
    bits = (low > np.median(low)).reshape(-1)  # (64,)
    return int("".join("1" if b else "0" for b in bits), 2)


@dataclass
class PhotoAnalysis:
    """Per photo id: detected faces (only where detection ran), hashes, sizes, and why a photo could not be read."""

    faces: dict[str, tuple[FaceBox, ...]] = field(default_factory=dict)
    hashes: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (width, height) as decoded
    unreadable: dict[str, str] = field(default_factory=dict)


def _analyse_file(path: Path, detect: bool) -> tuple[tuple[FaceBox, ...] | None, int, tuple[int, int]] | str:
    if not path.is_file():
        return "photo file missing"
    try:
        rgb = load_image(path, max_pixels=40_000_000)
    except (FramefleetError, OSError, ValueError) as e:
        return f"photo unreadable ({str(e).splitlines()[0][:120]})"
    return (detect_faces(rgb) if detect else None), phash(rgb), (rgb.shape[1], rgb.shape[0])


def analyse_photos(
    dataset: Dataset,
    photos: Iterable[Photo] | None = None,
    *,
    detect: Literal["missing", "all", "none"] = "missing",
    threads: int = 2,
) -> PhotoAnalysis:
    """Faces and hashes for `photos` (default: all of the dataset's), each distinct file read once."""
    chosen = list(dataset.photos if photos is None else photos)
    by_file: dict[tuple[Path, bool], list[Photo]] = {}
    for p in chosen:
        run = detect == "all" or (detect == "missing" and p.faces is None)
        by_file.setdefault((dataset.photo_path(p), run), []).append(p)
    out = PhotoAnalysis()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = pool.map(lambda key: _analyse_file(*key), list(by_file))
        for (_path, _run), result in zip(by_file, results, strict=True):
            for p in by_file[(_path, _run)]:
                if isinstance(result, str):
                    out.unreadable[p.id] = result
                    continue
                faces, h, size = result
                out.hashes[p.id] = h
                out.sizes[p.id] = size
                if faces is not None:
                    out.faces[p.id] = faces
    return out
