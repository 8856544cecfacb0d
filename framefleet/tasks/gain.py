"""Does the model help on *this* video? A self-check with a reference we have: the source itself.

The source's first frames are downscaled by the model's factor, then brought back up twice: by the
model and by bicubic. VMAF of each against the source says how much detail the model restores over
the plain resize on this content; the difference (`gain_vmaf`) feeds the delivery rule. It measures the
model on one octave below the source, the closest measurable stand-in for the octave above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framefleet._fs import scratch_dir
from framefleet.media.decode import iter_frames
from framefleet.media.encode import EncodeSettings, encode_frames
from framefleet.models.upscale.classical import ResampleUpscaler
from framefleet.quality.fullref import full_reference
from framefleet.tasks import segment_worker as sw

GAIN_FRAMES = 24
LOSSLESS = EncodeSettings(crf=0, preset="veryfast")  # x264 at CRF 0 is lossless in yuv420p


def measure_gain(src: Path, spec: sw.ModelSpec, tmp_dir: Path, frames: int = GAIN_FRAMES) -> dict[str, Any]:
    s = spec.scale
    originals = []
    for i, f in enumerate(iter_frames(src)):
        if i >= frames:
            break
        h, w = f.shape[0] // (2 * s) * (2 * s), f.shape[1] // (2 * s) * (2 * s)
        originals.append(np.ascontiguousarray(f[:h, :w]))
    if not originals or min(originals[0].shape[:2]) < 16 * s:
        return {"gain_vmaf": None, "gain_note": f"too small to measure a ×{s} gain (needs ≥ {16 * s} px)"}
    h, w = originals[0].shape[:2]
    low = np.stack([cv2.resize(f, (w // s, h // s), interpolation=cv2.INTER_AREA) for f in originals])  # [N,h,w,3]
    model_up = sw._upscaler(spec)(low)  # [N, H, W, 3]
    bicubic_up = ResampleUpscaler("bicubic", scale=s)(low)
    with scratch_dir(tmp_dir, "gain") as d:
        ref, by_model, by_bicubic = (d / n for n in ("ref.mp4", "model.mp4", "bicubic.mp4"))
        encode_frames(originals, ref, fps=25, settings=LOSSLESS)
        encode_frames(list(model_up), by_model, fps=25, settings=LOSSLESS)
        encode_frames(list(bicubic_up), by_bicubic, fps=25, settings=LOSSLESS)
        m, b = full_reference(ref, by_model), full_reference(ref, by_bicubic)
    return {
        "gain_vmaf": round(m.vmaf - b.vmaf, 2),
        "gain_psnr": round(m.psnr - b.psnr, 3),
        "proxy": {"frames": len(originals), "model": m.to_dict(), "bicubic": b.to_dict()},
    }
