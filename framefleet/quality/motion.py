"""The dominant camera motion of a clip, measured with optical flow (OpenCV DIS), for prompt adherence.

Per pair of consecutive frames, dense flow is fitted by least squares with an affine field around the
centre, u = a + A·p; over the clip the fits are averaged. From A come divergence (zoom: scene grows > 0)
and curl (rotation: clockwise on screen > 0, y pointing down); from a the translation (the scene's motion
in pixels per frame, opposite to a pan's direction). A translation whose residual flow varies strongly
along its own axis (a near layer moving faster than the far one) is parallax.

Each cue is expressed as a speed in pixels per frame at the frame's edge, so they compare directly:
zoom = div/2·R, rotation = curl/2·R with R the half-size of the frame. The label is the strongest cue
(with its sign), or "static" below `min_speed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SCENE_DIRECTION = {(1, 0): "left", (-1, 0): "right", (0, 1): "up", (0, -1): "down"}  # scene motion → pan


@dataclass(frozen=True)
class MotionEstimate:
    translation: tuple[float, float]  # scene motion, px/frame (x right, y down)
    zoom: float  # px/frame at the edge, > 0: zooming in
    rotation: float  # px/frame at the edge, > 0: clockwise on screen
    parallax: float  # std of residual flow along the translation axis, relative to the translation
    label: str

    def to_dict(self) -> dict[str, object]:
        return {
            "translation": [round(v, 3) for v in self.translation],
            "zoom": round(self.zoom, 3),
            "rotation": round(self.rotation, 3),
            "parallax": round(self.parallax, 3),
            "label": self.label,
        }


def _flow(a: np.ndarray, b: np.ndarray, upscale: int) -> np.ndarray:
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    if upscale > 1:
        ga = cv2.resize(ga, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        gb = cv2.resize(gb, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    flow: np.ndarray = np.asarray(dis.calc(ga, gb, None), dtype=np.float32)
    if upscale > 1:
        flow = (
            np.asarray(cv2.resize(flow, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA), np.float32) / upscale
        )
    return flow  # [H, W, 2] in input pixels


def estimate_motion(frames: np.ndarray, *, min_speed: float = 0.35, parallax_ratio: float = 0.2) -> MotionEstimate:
    """frames: [F, H, W, 3] uint8, F ≥ 2."""
    n, h, w = frames.shape[:3]
    if n < 2:
        raise ValueError("motion needs at least two frames")
    up = max(1, 128 // min(h, w))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    xs, ys = xs - (w - 1) / 2, ys - (h - 1) / 2
    border = max(2, min(h, w) // 16)  # flow at the edges is unreliable (things enter and leave)
    inner = np.zeros((h, w), bool)
    inner[border:-border, border:-border] = True
    design = np.stack([np.ones(inner.sum()), xs[inner], ys[inner]], axis=1)  # [P, 3]
    fits, residuals = [], []
    for t in range(n - 1):
        f = _flow(frames[t], frames[t + 1], up)
        u, v = f[..., 0][inner].astype(np.float64), f[..., 1][inner].astype(np.float64)
        cu, *_ = np.linalg.lstsq(design, u, rcond=None)
        cv, *_ = np.linalg.lstsq(design, v, rcond=None)
        fits.append((cu, cv))
        residuals.append((u - design @ cu, v - design @ cv))
    cu = np.mean([f[0] for f in fits], axis=0)
    cv = np.mean([f[1] for f in fits], axis=0)
    radius = min(h, w) / 2
    tx, ty = float(cu[0]), float(cv[0])
    zoom = float((cu[1] + cv[2]) / 2 * radius)
    rotation = float((cv[1] - cu[2]) / 2 * radius)
    speed = max(abs(tx), abs(ty))
    axis = 0 if abs(tx) >= abs(ty) else 1
    spread = float(np.mean([np.std(r[axis]) for r in residuals]))
    parallax = spread / max(speed, 1e-6)
    label = _label(tx, ty, zoom, rotation, parallax, min_speed, parallax_ratio)
    return MotionEstimate((tx, ty), zoom, rotation, parallax, label)


def _label(tx: float, ty: float, zoom: float, rotation: float, parallax: float, min_speed: float, ratio: float) -> str:
    cues = {"translate": max(abs(tx), abs(ty)), "zoom": abs(zoom), "rotate": abs(rotation)}
    kind = max(cues, key=lambda k: cues[k])
    if cues[kind] < min_speed:
        return "static"
    if kind == "zoom":
        return "zoom_in" if zoom > 0 else "zoom_out"
    if kind == "rotate":
        return "rotate_cw" if rotation > 0 else "rotate_ccw"
    if abs(tx) >= abs(ty):
        direction = SCENE_DIRECTION[(1 if tx > 0 else -1, 0)]
    else:
        direction = SCENE_DIRECTION[(0, 1 if ty > 0 else -1)]
    if parallax > ratio and direction in ("left", "right"):
        return f"parallax_{direction}"
    return f"pan_{direction}"


def adheres(label: str, motion: str) -> bool:
    """Does the measured label match the prompted motion? Parallax is a pan with depth: a parallax prompt
    measured as a pan in the same direction counts (the layers' speeds differ less than the threshold)."""
    if label == motion:
        return True
    return motion.startswith("parallax_") and label == "pan_" + motion.removeprefix("parallax_")


__all__ = ["MotionEstimate", "adheres", "estimate_motion"]
