"""The teachers of the live model: prompt-named looks computed one frame at a time by slow or global
OpenCV operations (edge-preserving filters, domain-transform stylisation, per-frame histogram equalisation,
colour curves). Each takes and returns an RGB uint8 frame [H, W, 3] of the same size.

They are what the causal student (`net.LiveNet`) is trained to reproduce within a 40 ms frame budget. They
are deterministic per frame but have no memory: sensor noise or a compression artefact that changes
between two frames changes their output too (`flicker` measures by how much). Making the student steadier
than its teachers is the trainer's business, not theirs.

Parameters are in pixels of the frame they are applied to (sigma_s of the domain-transform filters, the
cartoon's edge block size): a look applied to a 256×256 crop of a 384×384 frame looks like the same
region of the look applied to the whole frame, which is what training on crops needs.

Time and flicker of every look at 384×384 on one thread (a few frames of a real clip):
    .venv/bin/python -m framefleet.models.live.looks
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

LookFn = Callable[[np.ndarray], np.ndarray]  # [H, W, 3] uint8 RGB -> [H, W, 3] uint8 RGB


@dataclass(frozen=True)
class Look:
    """A named look: the canonical prompt (what ships in the model's JSON and what a user types), the
    paraphrases the trainer samples (the canonical one included), phrasings never trained on (for the
    benchmark), and the per-frame teacher."""

    prompt: str
    paraphrases: tuple[str, ...]
    heldout: tuple[str, ...]
    fn: LookFn


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # [H, W] uint8


def _curve(fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A 256-entry uint8 lookup table from a function on [0, 1]."""
    x = np.linspace(0.0, 1.0, 256)
    lut: np.ndarray = (np.clip(fn(x), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # [256]
    return lut


def _vignette(h: int, w: int, strength: float) -> np.ndarray:
    """[H, W, 1] float32 gain: 1 in the centre, 1 - strength in the corners."""
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h / 2, 1)  # [H]
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(w / 2, 1)  # [W]
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2  # [H, W], 1 in the corners
    return (1.0 - strength * r2)[..., None]


def _grade(rgb: np.ndarray, luts: tuple[np.ndarray, np.ndarray, np.ndarray], vignette: float) -> np.ndarray:
    out = cv2.merge([cv2.LUT(c, lut) for c, lut in zip(cv2.split(rgb), luts, strict=True)])  # [H, W, 3]
    if vignette:
        gain = _vignette(rgb.shape[0], rgb.shape[1], vignette)  # [H, W, 1]
        out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return out


def pencil_sketch(rgb: np.ndarray) -> np.ndarray:
    grey, _ = cv2.pencilSketch(_bgr(rgb), sigma_s=60, sigma_r=0.07, shade_factor=0.05)  # [H, W]
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def colour_pencil(rgb: np.ndarray) -> np.ndarray:
    _, colour = cv2.pencilSketch(_bgr(rgb), sigma_s=60, sigma_r=0.07, shade_factor=0.05)  # [H, W, 3] BGR
    return _rgb(colour)


def watercolor(rgb: np.ndarray) -> np.ndarray:
    return _rgb(cv2.stylization(_bgr(rgb), sigma_s=60, sigma_r=0.45))


def soft_skin(rgb: np.ndarray) -> np.ndarray:
    """Recursive domain-transform smoothing: textures and blemishes go, edges stay. (A first version mixed
    it 30% back with the frame; that left the look 37 dB from the frame, nearer than a 0.5 M-parameter
    student reproduces any look, so no student could be told apart from passing the frame through.)"""
    return cv2.edgePreservingFilter(rgb, flags=cv2.RECURS_FILTER, sigma_s=50, sigma_r=0.35)


def _saturate(rgb: np.ndarray, gain: float) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # [H, W, 3]
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


_OIL_LEVELS = _curve(lambda x: np.round(x * 11) / 11)  # 12 levels per channel


def oil_painting(rgb: np.ndarray) -> np.ndarray:
    """Strong normalised-convolution smoothing, colours posterised to 12 levels, saturation × 1.35."""
    smooth = cv2.edgePreservingFilter(rgb, flags=cv2.NORMCONV_FILTER, sigma_s=60, sigma_r=0.5)
    return _saturate(cv2.LUT(smooth, _OIL_LEVELS), 1.35)


def crisp_detail(rgb: np.ndarray) -> np.ndarray:
    return _rgb(cv2.detailEnhance(_bgr(rgb), sigma_s=10, sigma_r=0.15))


_EDGE_KERNEL = np.ones((2, 2), np.uint8)


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """Flat, saturated colour (five bilateral passes at quarter size, saturation × 1.6) under black edges
    (adaptive threshold, thickened to two pixels: one-pixel lines are below what the student's 4× stem
    resolves, and a first student learned the flat colour only)."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    for _ in range(5):
        small = cv2.bilateralFilter(small, d=5, sigmaColor=40, sigmaSpace=5)
    flat = _saturate(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), 1.6)  # [H, W, 3]
    grey = cv2.medianBlur(_luma(rgb), 5)  # [H, W]
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)  # 0 on edges
    edges = cv2.erode(edges, _EDGE_KERNEL)
    return cv2.bitwise_and(flat, flat, mask=edges)


_SUNSET = (
    _curve(lambda x: 0.06 + 0.98 * x**0.85),  # R: lifted and brightened
    _curve(lambda x: 0.02 + 0.92 * x**0.95),  # G: a little
    _curve(lambda x: 0.78 * x**1.15),  # B: pulled down
)


def warm_sunset(rgb: np.ndarray) -> np.ndarray:
    return _grade(rgb, _SUNSET, vignette=0.25)


_MOON = (
    _curve(lambda x: 0.72 * x**1.25),
    _curve(lambda x: 0.02 + 0.80 * x**1.2),
    _curve(lambda x: 0.10 + 0.90 * x**1.05),
)


def cool_moonlight(rgb: np.ndarray) -> np.ndarray:
    """60% desaturated, darker, blue in the shadows and highlights."""
    grey = cv2.cvtColor(_luma(rgb), cv2.COLOR_GRAY2RGB)
    return _grade(cv2.addWeighted(rgb, 0.4, grey, 0.6, 0.0), _MOON, vignette=0.35)


_THERMAL_WINDOW = 24.0  # pixels: the Gaussian window of the local statistics


def thermal(rgb: np.ndarray) -> np.ndarray:
    """Blurred luminance, contrast-normalised by its neighbourhood (mean and deviation over a 24-pixel
    Gaussian window) and mixed with its absolute level, shown through the inferno colour map.

    A first version equalised the histogram of the whole frame. That is a global statistic: the same
    region came out 15.7 dB apart on a 128² training crop and in the full frame, so the student was taught
    an inconsistent function and did not learn the look. The window here is in pixels, so a crop agrees
    with the full frame (44 dB away from the border)."""
    y = cv2.GaussianBlur(_luma(rgb), (0, 0), 2.0).astype(np.float32)  # [H, W] 0..255
    mu = cv2.GaussianBlur(y, (0, 0), _THERMAL_WINDOW)  # [H, W] local mean
    var = cv2.GaussianBlur(y * y, (0, 0), _THERMAL_WINDOW) - mu * mu
    z = 0.7 * (y - mu) / (np.sqrt(np.maximum(var, 0.0)) + 12.0) + 2.5 * (y / 255.0 - 0.5)  # [H, W]
    heat = (255.0 / (1.0 + np.exp(-z)) + 0.5).astype(np.uint8)  # [H, W] logistic → 0..255
    return _rgb(cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO))


_PHOSPHOR = (
    _curve(lambda x: 0.15 * x**1.5),
    _curve(lambda x: 0.05 + 0.95 * x**0.7),
    _curve(lambda x: 0.2 * x**1.5),
)
_CLAHE = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))


def night_vision(rgb: np.ndarray) -> np.ndarray:
    """Local contrast (CLAHE) on luminance through a green phosphor, with a dark vignette."""
    grey = cv2.cvtColor(_CLAHE.apply(_luma(rgb)), cv2.COLOR_GRAY2RGB)
    return _grade(grey, _PHOSPHOR, vignette=0.6)


def _look(prompt: str, paraphrases: tuple[str, ...], heldout: tuple[str, ...], fn: LookFn) -> Look:
    return Look(prompt, (prompt, *paraphrases), heldout, fn)


LOOKS: dict[str, Look] = {
    "pencil-sketch": _look(
        "pencil sketch",
        ("a graphite pencil drawing", "black and white pencil sketch", "hand-drawn sketch in pencil"),
        ("drawn with a soft lead on paper",),
        pencil_sketch,
    ),
    "colour-pencil": _look(
        "colour pencil drawing",
        ("coloured pencil sketch", "drawn with crayons", "a color pencil illustration"),
        ("a sketchbook page in coloured leads",),
        colour_pencil,
    ),
    "watercolor": _look(
        "watercolor painting",
        ("a watercolour painting", "painted in watercolors", "soft watercolour wash"),
        ("as if brushed with wet pigment on paper",),
        watercolor,
    ),
    "soft-skin": _look(
        "soft skin smoothing",
        ("beauty filter", "smooth skin retouch", "soft focus portrait"),
        ("a flattering airbrushed complexion",),
        soft_skin,
    ),
    "oil-painting": _look(
        "oil painting",
        ("an oil painting on canvas", "painted in oils", "impasto oil paint"),
        ("a gallery canvas in thick pigment",),
        oil_painting,
    ),
    "crisp-detail": _look(
        "crisp detail",
        ("enhance details", "sharpen the image", "high definition detail boost"),
        ("make every texture pop",),
        crisp_detail,
    ),
    "cartoon": _look(
        "cartoon",
        ("a cartoon drawing", "comic book style", "animated cartoon look"),
        ("like a Saturday-morning animation cel",),
        cartoon,
    ),
    "warm-sunset": _look(
        "warm sunset grade",
        ("golden hour colour grade", "warm orange tones", "sunset lighting"),
        ("bathed in late-afternoon amber light",),
        warm_sunset,
    ),
    "cool-moonlight": _look(
        "cool moonlight grade",
        ("cold blue night tones", "moonlit scene", "cool blue colour grade"),
        ("a chilly nocturnal palette",),
        cool_moonlight,
    ),
    "thermal": _look(
        "thermal camera",
        ("infrared heat map", "thermal imaging view", "heat vision"),
        ("what a heat-sensing sensor would show",),
        thermal,
    ),
    "night-vision": _look(
        "night vision",
        ("green night vision goggles", "night vision camera", "low light green scope"),
        ("seen through military image intensifier optics",),
        night_vision,
    ),
}


def apply(name: str, frame: np.ndarray) -> np.ndarray:
    """The look `name` (a key of LOOKS) on one RGB uint8 frame [H, W, 3]."""
    if name not in LOOKS:
        raise KeyError(f"no look named {name!r}; choose one of {', '.join(LOOKS)}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"a look takes an RGB uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")
    out = LOOKS[name].fn(np.ascontiguousarray(frame))
    assert out.shape == frame.shape and out.dtype == np.uint8, (name, out.shape, out.dtype)
    return out


def blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """(1 − t)·a + t·b of two uint8 frames, rounded: the target of a blend of two looks."""
    return cv2.addWeighted(a, 1.0 - t, b, t, 0.0)


def flicker(name: str, frame: np.ndarray, sigma: float = 2.0, seed: int = 0) -> tuple[float, float]:
    """How much the look amplifies sensor noise: two copies of `frame` with independent Gaussian noise of
    `sigma` (0–255 units) → (mean |out_a − out_b| in 0–255 units, that over mean |in_a − in_b|)."""
    rng = np.random.default_rng(seed)
    f = frame.astype(np.float32)
    a, b = (np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).round().astype(np.uint8) for _ in range(2))
    d_out = float(np.abs(apply(name, a).astype(np.float32) - apply(name, b).astype(np.float32)).mean())
    d_in = float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())
    return d_out, d_out / max(d_in, 1e-6)


def measure(frames: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Per look: median and max milliseconds per frame over `frames`, and `flicker` on the first one."""
    out: dict[str, dict[str, float]] = {}
    for name in LOOKS:
        apply(name, frames[0])  # warm-up (lazy allocations)
        ms = []
        for f in frames:
            t0 = time.perf_counter()
            apply(name, f)
            ms.append((time.perf_counter() - t0) * 1e3)
        d, ratio = flicker(name, frames[0])
        out[name] = {"ms_median": float(np.median(ms)), "ms_max": max(ms), "flicker": d, "flicker_gain": ratio}
    return out


def main() -> None:
    from framefleet.media.decode import iter_frames
    from framefleet.media.samples import sample_path

    cv2.setNumThreads(1)
    frames = []
    for i, f in enumerate(iter_frames(sample_path("bikes"))):
        if i % 10 == 0:
            h, w = f.shape[:2]
            s = min(h, w)
            crop = f[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
            frames.append(cv2.resize(crop, (384, 384), interpolation=cv2.INTER_CUBIC))
        if len(frames) == 5:
            break
    print(f"{'look':16} {'ms median':>10} {'ms max':>8} {'flicker':>8} {'gain':>6}   (384×384, 1 thread, σ=2 noise)")
    for name, m in measure(frames).items():
        print(f"{name:16} {m['ms_median']:10.1f} {m['ms_max']:8.1f} {m['flicker']:8.2f} {m['flicker_gain']:6.2f}")


if __name__ == "__main__":
    main()
