"""File-name extensions from content: a stored file is named by what it is, not by what its upload was called.

A JPEG uploaded as `clip.mp4` is stored as `….jpg`; an MP4 called `clip.mov` keeps `.mov` (same container
family), one called `photo.png` becomes `….mp4`.

    content_suffix(probe("clip.mp4"), "clip.mp4")   # ".mp4"
    same_format(".jpeg", ".jpg")                      # True
"""

from __future__ import annotations

import functools

from framefleet.media.probe import MediaInfo

# FFmpeg demuxer name -> (the suffix we give, the suffixes that name the same container)
_VIDEO: dict[str, tuple[str, frozenset[str]]] = {
    "mov,mp4,m4a,3gp,3g2,mj2": (".mp4", frozenset({".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mj2"})),
    "matroska,webm": (".mkv", frozenset({".mkv", ".webm"})),
    "mpegts": (".ts", frozenset({".ts", ".mts", ".m2ts"})),
    "mpeg": (".mpg", frozenset({".mpg", ".mpeg", ".vob"})),
    "avi": (".avi", frozenset({".avi"})),
    "flv": (".flv", frozenset({".flv"})),
    "ogg": (".ogv", frozenset({".ogv", ".ogg"})),
    "asf": (".wmv", frozenset({".wmv", ".asf"})),
}
# Pillow format -> the suffix we give (otherwise the first Pillow registers for the format)
_IMAGE = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp"}
_SAME_IMAGE_FORMAT = {"MPO": "JPEG"}  # a camera's multi-picture JPEG is a JPEG to everyone else


@functools.cache
def _image_suffixes() -> dict[str, frozenset[str]]:
    """Pillow format -> every suffix Pillow registers for it (JPEG: .jpg, .jpeg, .jpe, .jfif, and .mpo)."""
    from PIL import Image

    by_format: dict[str, set[str]] = {}
    for ext, fmt in Image.registered_extensions().items():
        by_format.setdefault(_SAME_IMAGE_FORMAT.get(fmt, fmt), set()).add(ext.lower())
    return {fmt: frozenset(exts) for fmt, exts in by_format.items()}


def _family(suffix: str) -> frozenset[str]:
    s = suffix.lower()
    for _, family in _VIDEO.values():
        if s in family:
            return family
    for family in _image_suffixes().values():
        if s in family:
            return family
    return frozenset({s})


def content_suffix(info: MediaInfo, name: str) -> str:
    """The suffix to store a probed file under: its own name's when that names the same format, else ours."""
    own = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if info.kind == "image":
        fmt = _SAME_IMAGE_FORMAT.get(info.container, info.container)
        family = _image_suffixes().get(fmt, frozenset())
        default = _IMAGE.get(fmt) or min(family, default="")
    else:
        default, family = _VIDEO.get(info.container, ("." + info.container.split(",")[0], frozenset()))
        family = family or frozenset({default})
    return own if own in family else default


def same_format(a: str, b: str) -> bool:
    """Whether two suffixes name the same format (".jpeg" and ".jpg"; ".mp4" and ".mov")."""
    return _family(a) == _family(b)


__all__ = ["content_suffix", "same_format"]
