"""Procedural camera motion over real photographs: the training data of our reference animate models, and
the prompts that describe it.

A clip is what a camera sees while it moves over a still photograph. Pans and parallax are *camera*
moves: "pan left" turns the camera left, so the scene slides right across the frame. Zooms enlarge
(in) or shrink (out) the scene; "rotate clockwise" turns the picture clockwise on screen. Parallax adds a
near layer (a soft-edged patch of another photograph) that slides 2.5–4× faster than the background.

Every frame is an exact affine warp of the source photo (OpenCV, bilinear, reflected borders), so the
motion of a generated clip is known exactly; `framefleet.quality.motion` measures it back with optical
flow, which is how prompt adherence is scored.

Prompts come in two vocabularies: `train_prompts` (what the models see in training) and
`holdout_prompts` (other words with the same meanings, never trained on) to check that the sentence
embedding, not the exact wording, carries the motion.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from framefleet.media.samples import read_photo

MOTIONS = (
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
    "zoom_in",
    "zoom_out",
    "rotate_cw",
    "rotate_ccw",
    "parallax_left",
    "parallax_right",
)

_DIR = {"left": (1.0, 0.0), "right": (-1.0, 0.0), "up": (0.0, 1.0), "down": (0.0, -1.0)}  # scene velocity on screen
SPEEDS = {"slowly": 0.6, "": 1.0, "quickly": 1.5}

# Training vocabulary: every combination of these, per motion. Broad on purpose (many verbs and phrasings
# per motion), so that the sentence embedding of a new phrasing lands near its meaning; the held-out
# vocabulary below shares none of its distinctive words (drift, sweep, glide, sky, closer, magnify, widen,
# spin, twist, depth, ...).
_TRAIN_PAN = (
    "pan {d}",
    "camera pans {d}",
    "the camera pans {d}",
    "a {s} pan to the {d}",
    "panning {d}",
    "pan to the {d}",
    "go {d}",
    "the camera moves {d}",
    "shift the picture {d}",
    "slide to the {d}",
    "track {d}",
    "the camera turns {d}",
    "look to the {d}",
    "scroll {d}",
)
_TRAIN_TILT = {
    "up": ("tilt up", "the camera tilts up", "the camera looks up", "crane up", "raise the camera"),
    "down": ("tilt down", "the camera tilts down", "the camera looks down", "crane down", "lower the camera"),
}
_TRAIN_ZOOM = {
    "in": (
        "zoom in",
        "the camera zooms in",
        "push in",
        "zooming in",
        "dolly in",
        "enlarge the picture",
        "get nearer",
        "the picture grows",
        "close in on the centre",
    ),
    "out": (
        "zoom out",
        "the camera zooms out",
        "pull back",
        "zooming out",
        "dolly out",
        "shrink the picture",
        "back off",
        "the picture gets smaller",
        "pull out to a wide view",
    ),
}
_TRAIN_ROT = {
    "cw": (
        "rotate clockwise",
        "the picture rotates clockwise",
        "clockwise rotation",
        "turn clockwise",
        "roll clockwise",
        "the camera rolls clockwise",
        "turn the picture clockwise",
    ),
    "ccw": (
        "rotate counterclockwise",
        "the picture rotates counterclockwise",
        "counterclockwise rotation",
        "turn anticlockwise",
        "roll anticlockwise",
        "the camera rolls counterclockwise",
        "turn the picture anticlockwise",
    ),
}
_TRAIN_PARALLAX = (
    "parallax {d}",
    "parallax effect moving {d}",
    "layered parallax to the {d}",
    "the camera trucks {d}",
    "the foreground slides {d} faster than the background",
    "a 3D parallax move {d}",
)

# Held out: never seen in training (other verbs, other direction words).
HOLDOUT_PROMPTS = {
    "pan_left": ("the view drifts leftwards", "sweep the shot towards the left side"),
    "pan_right": ("the view drifts rightwards", "sweep the shot towards the right side"),
    "pan_up": ("the view drifts upwards", "the shot glides towards the sky"),
    "pan_down": ("the view drifts downwards", "the shot glides towards the ground"),
    "zoom_in": ("move closer to the subject", "the lens magnifies the scene gradually"),
    "zoom_out": ("move away from the subject", "the lens widens to reveal more of the scene"),
    "rotate_cw": ("the image spins in the clockwise direction", "slowly twist the frame clockwise"),
    "rotate_ccw": ("the image spins in the counter-clockwise direction", "slowly twist the frame anticlockwise"),
    "parallax_left": ("depth layers glide leftwards", "a 2.5D layered move towards the left"),
    "parallax_right": ("depth layers glide rightwards", "a 2.5D layered move towards the right"),
}


def _with_speed(texts: tuple[str, ...]) -> list[tuple[str, float]]:
    out = []
    for text, (word, speed) in itertools.product(texts, SPEEDS.items()):
        if "{s}" in text:
            out.append((text.replace("{s}", word or "steady").replace("  ", " "), speed))
        else:
            out.append(((f"{text} {word}" if word else text), speed))
    return out


def train_prompts() -> dict[str, list[tuple[str, float]]]:
    """Motion → [(prompt, speed factor)] in the training vocabulary ("pan left slowly" → 0.6)."""
    p: dict[str, list[tuple[str, float]]] = {}
    for d in ("left", "right", "up", "down"):
        texts = tuple(t.format(d=d, s="{s}") for t in _TRAIN_PAN) + _TRAIN_TILT.get(d, ())
        p[f"pan_{d}"] = _with_speed(texts)
    for k in ("in", "out"):
        p[f"zoom_{k}"] = _with_speed(_TRAIN_ZOOM[k])
    for k in ("cw", "ccw"):
        p[f"rotate_{k}"] = _with_speed(_TRAIN_ROT[k])
    for d in ("left", "right"):
        p[f"parallax_{d}"] = _with_speed(tuple(t.format(d=d) for t in _TRAIN_PARALLAX))
    return p


@dataclass(frozen=True)
class ClipSpec:
    motion: str
    speed: float = 1.0
    frames: int = 8
    size: int = 64


TRAIN_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "motorcycle_left.png",
    "ihc.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "camera.png",
    "coins.png",
    "moon.png",
)
# Never trained on (motorcycle_right is left out of both: it is a stereo twin of motorcycle_left).
HOLDOUT_PHOTOS = ("rocket.jpg", "coffee.png", "grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def _video_frames(name: str, every: int, count: int, start: int = 0) -> list[np.ndarray]:
    from framefleet.media.decode import iter_frames
    from framefleet.media.samples import sample_path

    frames = []
    for i, frame in enumerate(iter_frames(sample_path(name))):
        if i >= start and (i - start) % every == 0:
            frames.append(np.ascontiguousarray(frame))
            if len(frames) == count:
                break
    return frames


def photographs(split: str) -> dict[str, np.ndarray]:
    """Real photographs as RGB uint8: "train" or "holdout" (disjoint; see the module docstring)."""
    out: dict[str, np.ndarray] = {}
    if split == "train":
        for n in TRAIN_PHOTOS:
            out[n] = read_photo(n)
        for i, f in enumerate(_video_frames("bikes", 40, 6)):
            out[f"bikes#{i}"] = f
        for i, f in enumerate(_video_frames("bigbuckbunny", 30, 4)):
            out[f"bigbuckbunny#{i}"] = f
    elif split == "holdout":
        for n in HOLDOUT_PHOTOS:
            out[n] = read_photo(n)
        for i, f in enumerate(_video_frames("carphone", 60, 2)):
            out[f"carphone#{i}"] = f
    else:
        raise ValueError(f"unknown split {split!r}: train or holdout")
    return out


def _affine(cx: float, cy: float, scale: float, angle: float, size: int) -> np.ndarray:
    """dst → src map of a camera centred on (cx, cy) in the source, magnifying by `scale` and turning the
    picture by `angle` radians (positive: clockwise on screen, y pointing down)."""
    c, s = math.cos(angle), math.sin(angle)
    half = (size - 1) / 2
    # src = centre + R(-angle) · (dst - half) / scale
    a = np.array([[c, s], [-s, c]]) / scale
    t = np.array([cx, cy]) - a @ np.array([half, half])
    return np.hstack([a, t[:, None]]).astype(np.float32)


def _warp(src: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(src, m, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


@dataclass(frozen=True)
class CameraPath:
    """A clip's camera motion relative to its first frame, constant per frame: the scene's velocity in
    pixels per frame (x right, y down), the log of the magnification per frame (> 0: zoom in) and the
    picture's turn in radians per frame (> 0: clockwise on screen). Frame t of the clip is frame 0 warped
    by `relative_affine(t)` (the far layer of a parallax clip; its near layer moves faster)."""

    vx: float = 0.0
    vy: float = 0.0
    log_zoom: float = 0.0
    spin: float = 0.0

    def relative_affine(self, t: int, size: int) -> np.ndarray:
        """[2, 3] dst → src map from frame t to frame 0, in pixels (what cv2.warpAffine's inverse map takes)."""
        half = (size - 1) / 2
        scale = math.exp(self.log_zoom * t)
        c, s = math.cos(self.spin * t), math.sin(self.spin * t)
        a = np.array([[c, s], [-s, c]]) / scale
        shift = -np.array([self.vx, self.vy]) * t / scale
        off = np.array([half, half]) + shift - a @ np.array([half, half])
        return np.hstack([a, off[:, None]]).astype(np.float32)


def camera_path(kind_of_motion: str, speed: float = 1.0) -> CameraPath:
    """The camera path of a motion at a speed factor (1: the training clips' typical speed)."""
    kind, _, arg = kind_of_motion.partition("_")
    if kind in ("pan", "parallax"):
        dx, dy = _DIR[arg]
        px = (2.2 if kind == "pan" else 1.0) * speed  # screen pixels per frame (the far layer of a parallax)
        return CameraPath(vx=dx * px, vy=dy * px)
    if kind == "zoom":
        rate = 1 + 0.045 * speed
        return CameraPath(log_zoom=math.log(rate if arg == "in" else 1 / rate))
    if kind == "rotate":
        return CameraPath(spin=math.radians(3.0 * speed) * (1 if arg == "cw" else -1))
    raise ValueError(f"unknown motion {kind_of_motion!r}; one of {', '.join(MOTIONS)}")


def render_clip(
    photo: np.ndarray, spec: ClipSpec, rng: np.random.Generator, near: np.ndarray | None = None
) -> np.ndarray:
    """One clip [F, size, size, 3] uint8 of `spec.motion` over `photo`; frame 0 is the still the model is
    conditioned on. `near` is the photograph the parallax near layer is cut from (default: `photo`)."""
    return render_clip_with_path(photo, spec, rng, near)[0]


def render_clip_with_path(
    photo: np.ndarray, spec: ClipSpec, rng: np.random.Generator, near: np.ndarray | None = None
) -> tuple[np.ndarray, CameraPath]:
    """`render_clip` and the exact camera path it drew (speed jitter included), which supervises the
    reference models' camera-path head."""
    n, size = spec.frames, spec.size
    # the first frame shows 35–90% of the photograph's short side; resample once (area filter) so the
    # warps below magnify by about 1 and never alias
    frac = rng.uniform(0.35, 0.9)
    f = size / (min(photo.shape[:2]) * frac)
    photo = cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    h, w = photo.shape[:2]
    jitter = rng.uniform(0.8, 1.2) * spec.speed
    kind = spec.motion.partition("_")[0]
    path = camera_path(spec.motion, jitter)
    vx, vy, spin = path.vx, path.vy, path.spin
    zoom = math.exp(path.log_zoom) if kind == "zoom" else 0.0
    # start where the whole path stays on the photograph where possible (borders reflect otherwise)
    margin = size * 0.5 + abs(vx + vy) * n
    cx = rng.uniform(min(margin, w / 2), max(w - margin, w / 2))
    cy = rng.uniform(min(margin, h / 2), max(h - margin, h / 2))
    layer = _near_layer(near if near is not None else photo, rng, size) if kind == "parallax" else None
    out = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        scale = zoom**t if zoom else 1.0
        # the scene moves by (vx, vy) screen pixels per frame: the camera moves the other way
        m = _affine(cx - vx * t / scale, cy - vy * t / scale, scale, spin * t, size)
        frame = _warp(photo, m, size)
        if layer is not None:
            if t == 0:
                rng.uniform(2.5, 4.0)  # unused, but the shipped teacher's training stream drew it: keep the draw
            frame = _composite(frame, layer, t, vx, vy)
        out[t] = frame
    return out, path


@dataclass
class _Layer:
    rgb: np.ndarray  # [k, k, 3]
    alpha: np.ndarray  # [k, k, 1] float
    x: float
    y: float
    factor: float


def _near_layer(photo: np.ndarray, rng: np.random.Generator, size: int) -> _Layer:
    k = int(rng.integers(size * 3 // 8, size * 5 // 8))
    h, w = photo.shape[:2]
    src = max(k, int(min(h, w) * rng.uniform(0.2, 0.45)))
    y0, x0 = int(rng.integers(0, h - src + 1)), int(rng.integers(0, w - src + 1))
    rgb = cv2.resize(photo[y0 : y0 + src, x0 : x0 + src], (k, k), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:k, 0:k]
    r = ((yy - (k - 1) / 2) ** 2 + (xx - (k - 1) / 2) ** 2) ** 0.5 / (k / 2)
    alpha = np.clip((1.0 - r) / 0.25, 0.0, 1.0)[..., None].astype(np.float32)  # a disc with a soft edge
    return _Layer(rgb, alpha, rng.uniform(0, size - k), rng.uniform(0, size - k), rng.uniform(2.5, 4.0))


def _composite(frame: np.ndarray, layer: _Layer, t: int, vx: float, vy: float) -> np.ndarray:
    size = frame.shape[0]
    m = np.array([[1, 0, layer.x + layer.factor * vx * t], [0, 1, layer.y + layer.factor * vy * t]], np.float32)
    rgb = cv2.warpAffine(layer.rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(layer.alpha[..., 0], m, (size, size), flags=cv2.INTER_LINEAR)[..., None]
    return (frame * (1 - a) + rgb * a + 0.5).astype(np.uint8)


__all__ = [
    "HOLDOUT_PROMPTS",
    "MOTIONS",
    "CameraPath",
    "ClipSpec",
    "camera_path",
    "photographs",
    "render_clip",
    "render_clip_with_path",
    "train_prompts",
]
