"""How much of the model's gain does the enhanced variant's mezzanine file keep? (issue 17, "no loss on the way
to the file")

    OMP_NUM_THREADS=1 FRAMEFLEET_THREADS=1 .venv/bin/python benchmarks/mezzanine_benchmark.py
    .venv/bin/python benchmarks/mezzanine_benchmark.py --model ecbsr --clips carphone   # another model, one clip

For each real sample clip (bikes, bigbuckbunny, carphone) the first FRAMES frames (cropped to a multiple of 4, as
the enhance self-check does) are downscaled ×2 (OpenCV INTER_AREA) and brought back ×2 by the model. Scored
against the original frames with libvmaf (`full_reference`, both sides encoded losslessly, x264 CRF 0, as
`tasks/gain.py` does), that is the *in-memory* result. The same model output is then encoded with each candidate
mezzanine setting (`EncodeSettings`), decoded by libvmaf and scored again: the *file* result. The loss is
in-memory minus file, in PSNR-Y (dB) and VMAF. Also recorded per setting: file size and bitrate, the encoder's
CPU seconds per frame (process CPU time, so other load on the machine does not inflate it), and the codec's own
PSNR-Y (decoded file against the lossless model output, and the same for the original frames encoded with the
setting: the most detailed content a sharper model could produce, for margin).

Prints the table, then the settings whose loss is ≤ --target dB (default 0.05: the requirement is 0.1, and a
sharper model than ESPCN will lose more) on every clip, smallest files first, and which one ships
(`framefleet.tasks.enhance.MEZZANINE`). Writes benchmarks/results/mezzanine.json.

Result (2 cores, ESPCN v4): only lossless (CRF 0) stays under 0.05 dB on every clip; CRF 2 loses 0.087 dB on
bikes, CRF 16 (the mezzanine before) 0.71 / 0.79 / 0.15 dB and 1.9 / 2.4 / 1.8 VMAF. CRF 0 ships with preset
veryfast: 3.5-7% more bytes than medium for about half its encoder time (see the comment on MEZZANINE).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from framefleet.media import encode_frames, iter_frames, sample_path
from framefleet.media.encode import EncodeSettings
from framefleet.models.upscale import load_upscaler
from framefleet.quality.fullref import full_reference, psnr
from framefleet.tasks.enhance import MEZZANINE

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "mezzanine.json"
FRAMES = 24
SCALE = 2
CLIPS = ("bikes", "bigbuckbunny", "carphone")
LOSSLESS = EncodeSettings(crf=0, preset="veryfast")  # the reference side of every score
CANDIDATES: dict[str, EncodeSettings] = {
    "crf16-veryfast": EncodeSettings(crf=16, preset="veryfast"),  # the mezzanine before issue 17
    "crf12-veryfast": EncodeSettings(crf=12, preset="veryfast"),
    "crf10-veryfast": EncodeSettings(crf=10, preset="veryfast"),
    "crf8-veryfast": EncodeSettings(crf=8, preset="veryfast"),
    "crf6-veryfast": EncodeSettings(crf=6, preset="veryfast"),
    "crf4-veryfast": EncodeSettings(crf=4, preset="veryfast"),
    "crf2-veryfast": EncodeSettings(crf=2, preset="veryfast"),
    "crf0-ultrafast": EncodeSettings(crf=0, preset="ultrafast"),  # lossless
    "crf0-veryfast": EncodeSettings(crf=0, preset="veryfast"),  # lossless
    "crf0-medium": EncodeSettings(crf=0, preset="medium"),  # lossless
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _luma(path: Path) -> np.ndarray:
    """[N, H, W] uint8: the Y plane of every frame, as the file holds it (no colour conversion)."""
    with av.open(str(path)) as c:
        # a yuv420p frame as an ndarray is [1.5 H, W]: the Y plane, then U and V
        return np.stack([f.to_ndarray()[: f.height] for f in c.decode(c.streams.video[0])])


def _clip_frames(name: str, frames: int) -> np.ndarray:
    out = []
    for i, f in enumerate(iter_frames(sample_path(name))):
        if i >= frames:
            break
        h, w = f.shape[0] // (2 * SCALE) * (2 * SCALE), f.shape[1] // (2 * SCALE) * (2 * SCALE)
        out.append(np.ascontiguousarray(f[:h, :w]))
    return np.stack(out)  # [N, H, W, 3]


def measure_clip(name: str, model: str, settings: dict[str, EncodeSettings], frames: int, d: Path) -> dict[str, Any]:
    originals = _clip_frames(name, frames)
    n, h, w = originals.shape[:3]
    low = np.stack([cv2.resize(f, (w // SCALE, h // SCALE), interpolation=cv2.INTER_AREA) for f in originals])
    up = load_upscaler(model, scale=SCALE)(low)  # [N, H, W, 3]: the in-memory result
    ref, mem = d / f"{name}-ref.mp4", d / f"{name}-model.mp4"
    encode_frames(originals, ref, fps=25, settings=LOSSLESS)
    encode_frames(up, mem, fps=25, settings=LOSSLESS)
    in_memory = full_reference(ref, mem, threads=1)
    y_ref, y_mem = _luma(ref), _luma(mem)
    rows: dict[str, Any] = {}
    for label, s in settings.items():
        f = d / f"{name}-{label}.mp4"
        t0 = _cpu()
        encode_frames(up, f, fps=25, settings=s)
        cpu = _cpu() - t0
        g = d / f"{name}-{label}-orig.mp4"
        encode_frames(originals, g, fps=25, settings=s)
        file = full_reference(ref, f, threads=1)
        size = f.stat().st_size
        rows[label] = {
            "settings": s.as_params(),
            "file": file.to_dict(),
            "loss_psnr": round(in_memory.psnr - file.psnr, 4),
            "loss_vmaf": round(in_memory.vmaf - file.vmaf, 4),
            "bytes": size,
            "kbps": round(size * 8 / (n / 25) / 1000, 1),
            "encode_cpu_s_per_frame": round(cpu / n, 4),
            "codec_psnr_y_model": round(min(60.0, psnr(y_mem, _luma(f))), 3),
            "codec_psnr_y_original": round(min(60.0, psnr(y_ref, _luma(g))), 3),
        }
    return {"size": [w, h], "frames": n, "in_memory": in_memory.to_dict(), "settings": rows}


def passing(results: dict[str, Any], settings: dict[str, EncodeSettings], target: float) -> list[dict[str, Any]]:
    """The settings whose PSNR-Y loss is ≤ `target` dB on every clip, smallest files (summed over clips) first."""
    rows = []
    for label in settings:
        per_clip = [c["settings"][label] for c in results.values()]
        if all(r["loss_psnr"] <= target for r in per_clip):
            rows.append(
                {
                    "setting": label,
                    "bytes": sum(r["bytes"] for r in per_clip),
                    "encode_cpu_s": round(
                        sum(
                            r["encode_cpu_s_per_frame"] * c["frames"]
                            for r, c in zip(per_clip, results.values(), strict=True)
                        ),
                        3,
                    ),
                    "max_loss_psnr": max(r["loss_psnr"] for r in per_clip),
                    "max_loss_vmaf": max(r["loss_vmaf"] for r in per_clip),
                }
            )
    return sorted(rows, key=lambda r: r["bytes"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), choices=CLIPS)
    ap.add_argument("--frames", type=int, default=FRAMES)
    ap.add_argument("--settings", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--target", type=float, default=0.05, help="loss to stay under, dB PSNR-Y (requirement: 0.1)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    chosen_settings = {k: CANDIDATES[k] for k in args.settings}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="framefleet-mezz-") as tmp:
        for name in args.clips:
            results[name] = measure_clip(name, args.model, chosen_settings, args.frames, Path(tmp))
            print(f"measured {name}", file=sys.stderr, flush=True)
    header = (
        f"{'clip':13} {'setting':15} {'mem PSNR':>8} {'mem VMAF':>8} {'file PSNR':>9} {'file VMAF':>9} "
        f"{'loss dB':>7} {'loss VMAF':>9} {'kb/s':>8} {'cpu ms/f':>8} {'codec dB':>8} {'orig dB':>7}"
    )
    print(header)
    for name, c in results.items():
        m = c["in_memory"]
        for label, r in c["settings"].items():
            f = r["file"]
            print(
                f"{name:13} {label:15} {m['psnr']:8.3f} {m['vmaf']:8.3f} {f['psnr']:9.3f} {f['vmaf']:9.3f} "
                f"{r['loss_psnr']:7.3f} {r['loss_vmaf']:9.3f} {r['kbps']:8.0f} "
                f"{1000 * r['encode_cpu_s_per_frame']:8.1f} {r['codec_psnr_y_model']:8.2f} "
                f"{r['codec_psnr_y_original']:7.2f}"
            )
    ok = passing(results, chosen_settings, args.target)
    print(f"\nsettings with PSNR-Y loss ≤ {args.target} dB on every clip (sums over the clips):")
    for r in ok:
        print(f"  {r['setting']:15} {r['bytes']:>10,} bytes  encoder {r['encode_cpu_s']:6.2f} CPU s")
    shipped = next((k for k, v in CANDIDATES.items() if v == MEZZANINE), None)
    print(f"shipped (framefleet.tasks.enhance.MEZZANINE): {shipped or MEZZANINE}")
    doc = {
        "model": args.model,
        "frames": args.frames,
        "scale": SCALE,
        "degradation": "INTER_AREA ×1/2, no compression",
        "target_loss_psnr": args.target,
        "passing": ok,
        "shipped": shipped or MEZZANINE.as_params(),
        "clips": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
