"""The timeline of one campaign video: cards, photos, on-screen times, crossfades and Ken Burns paths. Pure.

A video is a title card, the curated photos in order, and an end card. Neighbouring segments overlap by one
crossfade, so the length is the sum of the on-screen times minus the overlaps. `plan_timeline` picks the
on-screen time per photo so the video lasts between `min_seconds` and `max_seconds` (15–30 s by default):
few photos stay longer, many photos move faster, never under `min_photo_s`.

Ken Burns: each photo moves from one 16:9 window of the picture to another (a slow zoom in or out, with a
drift). Both windows contain the union of the face boxes whenever that union fits in a window, so nobody's
face leaves the frame; windows never leave the picture (no black borders).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from framefleet.campaign.dataset import FaceBox
from framefleet.errors import InputError

WIDTH, HEIGHT, FPS = 1280, 720, 30


@dataclass(frozen=True)
class Window:
    """A crop of the source picture in pixels: left, top, width (height follows from the output aspect)."""

    x: float
    y: float
    w: float
    h: float

    def lerp(self, other: Window, t: float) -> Window:
        return Window(*(a + (b - a) * t for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)

    def contains(self, x0: float, y0: float, x1: float, y1: float, eps: float = 1e-6) -> bool:
        return self.x <= x0 + eps and self.y <= y0 + eps and x1 <= self.x + self.w + eps and y1 <= self.y + self.h + eps


@dataclass(frozen=True)
class Shot:
    """One photo on screen: where it is, its size in pixels, its faces, for how long, and its motion."""

    path: str
    size: tuple[int, int]  # (width, height) of the decoded picture
    faces: tuple[FaceBox, ...]
    seconds: float
    start: Window
    end: Window


@dataclass(frozen=True)
class Card:
    """A title or end card: text lines on a plain background."""

    lines: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class Timeline:
    title: Card
    shots: tuple[Shot, ...]
    end: Card
    crossfade_s: float = 0.5
    fps: int = FPS
    width: int = WIDTH
    height: int = HEIGHT
    music: str | None = None
    music_fade_s: float = 1.5
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def segments(self) -> tuple[Card | Shot, ...]:
        return (self.title, *self.shots, self.end)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.segments) - self.crossfade_s * (len(self.segments) - 1)

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    def starts(self) -> list[float]:
        """Start time of each segment; segment i+1 starts one crossfade before segment i ends."""
        out, t = [], 0.0
        for s in self.segments:
            out.append(t)
            t += s.seconds - self.crossfade_s
        return out


def _face_union(faces: Sequence[FaceBox], w: int, h: int) -> tuple[float, float, float, float] | None:
    if not faces:
        return None
    x0 = min(f.x for f in faces) * w
    y0 = min(f.y for f in faces) * h
    x1 = max(f.x + f.w for f in faces) * w
    y1 = max(f.y + f.h for f in faces) * h
    return x0, y0, x1, y1


def _fit(cx: float, cy: float, ww: float, size: tuple[int, int], aspect: float) -> Window:
    """A window of width `ww` centred as near (cx, cy) as the picture allows."""
    w, h = size
    wh = ww / aspect
    x = min(max(cx - ww / 2, 0.0), w - ww)
    y = min(max(cy - wh / 2, 0.0), h - wh)
    return Window(x, y, ww, wh)


def ken_burns(
    size: tuple[int, int], faces: Sequence[FaceBox], *, seed: str, aspect: float = WIDTH / HEIGHT, zoom: float = 1.25
) -> tuple[Window, Window]:
    """Start and end windows for one photo; `seed` (the photo id) picks zoom in or out, repeatably."""
    w, h = size
    wide = min(float(w), h * aspect)  # the largest window of this aspect inside the picture
    union = _face_union(faces, w, h)
    if union is None:
        cx, cy, need = w / 2, h / 2, 0.0
    else:
        x0, y0, x1, y1 = union
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        need = max(x1 - x0, (y1 - y0) * aspect) * 1.15  # a margin around the faces
    tight = min(wide, max(wide / zoom, need))
    a = _fit(cx, cy, wide, size, aspect)
    b = _fit(cx, cy, tight, size, aspect)
    zoom_in = hashlib.blake2b(seed.encode(), digest_size=1).digest()[0] % 2 == 0
    return (a, b) if zoom_in else (b, a)


def photo_seconds(n_photos: int, cards_s: float, crossfade_s: float, *, target_s: float, min_photo_s: float) -> float:
    """On-screen time per photo so the whole video lasts `target_s` (overlaps included)."""
    segments = n_photos + 2
    return max(min_photo_s, (target_s - cards_s + crossfade_s * (segments - 1)) / n_photos)


def plan_timeline(
    photos: Sequence[tuple[str, tuple[int, int], Sequence[FaceBox], str]],
    title: Sequence[str],
    end: Sequence[str],
    *,
    min_seconds: float = 15.0,
    max_seconds: float = 30.0,
    per_photo_s: float = 3.0,
    min_photo_s: float = 1.5,
    title_s: float = 2.5,
    end_s: float = 3.0,
    crossfade_s: float = 0.5,
    fps: int = FPS,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    music: str | None = None,
) -> Timeline:
    """A timeline for `photos` = (path, (width, height), faces, photo id), lasting min..max seconds."""
    if not photos:
        raise InputError("a campaign video needs at least one photo")
    if not 0 < crossfade_s < min(min_photo_s, title_s, end_s):
        raise InputError(f"crossfade_s must be > 0 and shorter than every segment, got {crossfade_s}")
    n = len(photos)
    cards = title_s + end_s
    natural = cards + n * per_photo_s - crossfade_s * (n + 1)
    target = min(max(natural, min_seconds), max_seconds)
    each = photo_seconds(n, cards, crossfade_s, target_s=target, min_photo_s=min_photo_s)
    total = cards + n * each - crossfade_s * (n + 1)
    if total > max_seconds + 1e-9:
        raise InputError(
            f"{n} photos need {total:.1f} s at {min_photo_s} s each, over {max_seconds} s; curate fewer photos"
        )
    shots = []
    if size[0] % 2 or size[1] % 2 or min(size) < 16:
        raise InputError(f"video size {size[0]}x{size[1]}: width and height must be even and at least 16")
    for path, picture, faces, photo_id in photos:
        if picture[0] < 16 or picture[1] < 16:
            raise InputError(f"{path}: picture is {picture[0]}x{picture[1]}, too small to show")
        start, stop = ken_burns(picture, faces, seed=photo_id, aspect=size[0] / size[1])
        shots.append(Shot(path, picture, tuple(faces), each, start, stop))
    return Timeline(
        title=Card(tuple(title), title_s),
        shots=tuple(shots),
        end=Card(tuple(end), end_s),
        crossfade_s=crossfade_s,
        fps=fps,
        width=size[0],
        height=size[1],
        music=music,
    )
