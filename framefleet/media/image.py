"""Images: identify (header only) and load, with a decompression-bomb guard.

A 60000×60000 PNG is a few kilobytes on disk and 10.8 GB once decoded. We read the header, compare the
declared pixel count with the limit (`FRAMEFLEET_MAX_IMAGE_PIXELS`, default 100 M) and refuse before any
pixel is decoded. Pillow has a hard stop of its own at 2 × `Image.MAX_IMAGE_PIXELS` (~179 M by default);
a limit above that needs the application to raise Pillow's too.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from framefleet.errors import InputError, TooLarge

DEFAULT_MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name: PNG, JPEG, WEBP, ...
    width: int  # as displayed, after EXIF orientation
    height: int
    mode: str
    frames: int  # > 1 for animated GIF/WebP; we use the first


def _too_large(path: Path, width: int, height: int, limit: int) -> TooLarge:
    return TooLarge(
        f"{path}: image header declares {width}×{height} = {width * height:,} pixels, over the limit of "
        f"{limit:,} (decompression-bomb guard); downscale it or raise FRAMEFLEET_MAX_IMAGE_PIXELS"
    )


def _open(path: Path, max_pixels: int) -> Image.Image | None:
    """Open lazily (header only). None when Pillow does not recognise the file as an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        # Pillow's own hard stop (2 × its MAX_IMAGE_PIXELS) fired before we could read the size; its
        # message carries the declared pixel count.
        m = re.search(r"\((\d+) pixels\)", str(e))
        declared = f"{int(m.group(1)):,} pixels" if m else "more pixels than Pillow allows"
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0))
        raise TooLarge(
            f"{path}: image header declares {declared}, over the limit of {limit:,} "
            "(decompression-bomb guard); downscale it or raise FRAMEFLEET_MAX_IMAGE_PIXELS"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise _too_large(path, w, h, max_pixels)
    return im


def identify_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo | None:
    """Describe an image from its header and check it decodes; None if the file is not an image at all."""
    p = Path(path)
    im = _open(p, max_pixels)
    if im is None:
        return None
    with im:
        fmt = str(im.format or "unknown")
        frames = int(getattr(im, "n_frames", 1) or 1)
        try:
            im.load()  # decode once: a truncated JPEG/PNG fails here rather than later in a worker
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{p}: {fmt} image is corrupt or truncated ({e}); re-export it") from None
        shown = ImageOps.exif_transpose(im)
        return ImageInfo(format=fmt, width=shown.width, height=shown.height, mode=im.mode, frames=frames)


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, at_least: int | None = None) -> np.ndarray:
    """Decode an image to RGB uint8 HWC, honouring EXIF orientation. Raises InputError if it is not one.

    `at_least`: the caller needs no more than this many pixels on each side, so a JPEG may be decoded at 1/2,
    1/4 or 1/8 scale (libjpeg's DCT scaling, `Image.draft`) as long as both sides stay >= `at_least`: a
    12-megapixel photo shown at 720p decodes several times faster.
    """
    p = Path(path)
    im = _open(p, max_pixels)
    if im is None:
        raise InputError(f"{p}: not an image Pillow can read; give a PNG, JPEG or WebP file")
    with im:
        if at_least is not None and im.format == "JPEG":
            im.draft("RGB", (at_least, at_least))
        try:
            return _to_rgb8(ImageOps.exif_transpose(im))
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{p}: image is corrupt or truncated ({e}); re-export it") from None


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """Any mode → RGB uint8 [H, W, 3]: 16-bit and 32-bit greys are scaled (Pillow's convert would clip them to
    white), CMYK and palettes converted, transparency composited over white (what a viewer shows)."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        grey = np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)
