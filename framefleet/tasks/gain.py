"""Does the model help on *this* video, and does the file keep it? A self-check with a reference we have: the
source itself.

The source's first frames are downscaled by the model's factor, then brought back up twice: by the
model and by Lanczos (the strongest simple resize: the baseline to beat). VMAF of each against the source
says how much detail the model restores over the plain resize on this content; the difference (`gain_vmaf`,
in memory) feeds the delivery rule. It measures the model on one octave below the source, the closest
measurable stand-in for the octave above it.

The model's output is also encoded with the enhanced variant's mezzanine settings and scored from the file
(`proxy.file`): `mezzanine_loss_psnr` / `mezzanine_loss_vmaf` (in memory minus file) say how much of the
model's result the stored video loses on the way (benchmarks/mezzanine_benchmark.py chose the settings).
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
from framefleet.quality.fullref import QualityScores, full_reference
from framefleet.tasks import segment_worker as sw

GAIN_FRAMES = 24
BASELINE = "lanczos"  # the strongest simple resize (OpenCV INTER_LANCZOS4)
LOSSLESS = EncodeSettings(crf=0, preset="veryfast")  # x264 at CRF 0 is lossless in yuv420p


def measure_gain(
    src: Path,
    spec: sw.ModelSpec,
    tmp_dir: Path,
    frames: int = GAIN_FRAMES,
    *,
    mezzanine: EncodeSettings | None = None,
) -> dict[str, Any]:
    """`gain_vmaf` / `gain_psnr` (model minus Lanczos, in memory, against the source) and the scores behind them
    (`proxy`); with `mezzanine`, also the model's output scored from a file encoded with it (`proxy.file`) and
    `mezzanine_loss_psnr` / `mezzanine_loss_vmaf` (in memory minus file)."""
    s = spec.scale
    originals = []
    for i, f in enumerate(iter_frames(src)):
        if i >= frames:
            break
        h, w = f.shape[0] // (2 * s) * (2 * s), f.shape[1] // (2 * s) * (2 * s)
        originals.append(np.ascontiguousarray(f[:h, :w]))
    if not originals or min(originals[0].shape[:2]) < 16 * s:
        note = f"too small to measure a ×{s} gain (needs ≥ {16 * s} px)"
        return {"gain_vmaf": None, "gain_note": note, "mezzanine_loss_psnr": None, "mezzanine_loss_vmaf": None}
    h, w = originals[0].shape[:2]
    low = np.stack([cv2.resize(f, (w // s, h // s), interpolation=cv2.INTER_AREA) for f in originals])  # [N,h,w,3]
    model_up = sw._upscaler(spec)(low)  # [N, H, W, 3]
    baseline_up = ResampleUpscaler(BASELINE, scale=s)(low)
    with scratch_dir(tmp_dir, "gain") as d:
        ref, by_model, by_baseline, in_file = (d / n for n in ("ref.mp4", "model.mp4", "baseline.mp4", "file.mp4"))
        encode_frames(originals, ref, fps=25, settings=LOSSLESS)
        encode_frames(list(model_up), by_model, fps=25, settings=LOSSLESS)
        encode_frames(list(baseline_up), by_baseline, fps=25, settings=LOSSLESS)
        m, b = full_reference(ref, by_model), full_reference(ref, by_baseline)
        file: QualityScores | None = None
        if mezzanine == LOSSLESS:  # the mezzanine file is the lossless one just scored: the same bytes
            file = m
        elif mezzanine is not None:
            encode_frames(list(model_up), in_file, fps=25, settings=mezzanine)
            file = full_reference(ref, in_file)
    proxy: dict[str, Any] = {
        "frames": len(originals),
        "baseline": BASELINE,
        "model": m.to_dict(),
        BASELINE: b.to_dict(),
    }
    out: dict[str, Any] = {"gain_vmaf": round(m.vmaf - b.vmaf, 2), "gain_psnr": round(m.psnr - b.psnr, 3)}
    if file is not None and mezzanine is not None:
        proxy["file"] = {**file.to_dict(), "encode": mezzanine.as_params()}
        out["mezzanine_loss_psnr"] = round(m.psnr - file.psnr, 3)
        out["mezzanine_loss_vmaf"] = round(m.vmaf - file.vmaf, 2)
    return {**out, "proxy": proxy}
