"""`framefleet enhance` and `framefleet quality`.

framefleet enhance clip.mp4 --scale 2 [--model ecbsr] [--fps 60] [--segments 4] [--force] [--no-gate]
                            [--ladder 720,480] [-o out.mp4] [--json]
framefleet quality ref.mp4 dist.mp4 --json     # {"psnr": .., "ssim": .., "vmaf": .., ...}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from framefleet._cli import (
    JsonOpt,
    app,
    calibration_line,
    emit,
    err,
    out,
    progress_bars,
    run,
    self_check_line,
    skipped_rungs_note,
)
from framefleet.config import Settings, parse_ladder
from framefleet.models.interpolate import INTERPOLATORS
from framefleet.models.upscale import UPSCALERS
from framefleet.quality.gate import GateThresholds
from framefleet.store import Store
from framefleet.store.views import variant_dict


@contextmanager
def stage_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    with progress_bars(enabled) as update:
        yield None if update is None else (lambda stage, done, total: update(f"{stage} (frames)", done, total))


@app.command()
def enhance(
    source: Annotated[str, typer.Argument(help="A video file (ingested first) or an asset id.")],
    scale: Annotated[int, typer.Option(help="Upscaling factor.")] = 2,
    model: Annotated[str | None, typer.Option(help=f"{', '.join(UPSCALERS)}. Default: ecbsr without a GPU.")] = None,
    weights: Annotated[
        str | None, typer.Option(help="Your weights: .pth/.safetensors for srvgg, .safetensors for ecbsr/espcn.")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="openvino, onnx or torch. Default on CPU: openvino where the CPU has bf16, else onnx."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    fps: Annotated[float | None, typer.Option(help="Target frame rate: twice the source's.")] = None,
    interpolator: Annotated[str, typer.Option(help=f"{', '.join(INTERPOLATORS)}.")] = "dis",
    segments: Annotated[int, typer.Option(help="Process N keyframe segments in parallel.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Recompute even if this variant exists.")] = False,
    no_gate: Annotated[bool, typer.Option("--no-gate", help="Run the model whatever the gate says.")] = False,
    no_calibrate: Annotated[
        bool,
        typer.Option(
            "--no-calibrate", help="Run the model as it is, not blended with Lanczos by a weight fitted on the clip."
        ),
    ] = False,
    min_quality: Annotated[float, typer.Option(help="Gate: skip inputs with estimated VMAF below this.")] = 40.0,
    target: Annotated[int, typer.Option(help="Gate: skip inputs whose short side is already ≥ this.")] = 1080,
    min_size: Annotated[int, typer.Option(help="Gate: skip inputs whose short side is below this.")] = 64,
    ladder: Annotated[str | None, typer.Option(help="Also encode an ABR ladder from the result, e.g. 720,480.")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Run segments as Ray tasks on this cluster.")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Also write the enhanced video here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Upscale a video (and double its frame rate) into a new variant, if the quality gate says it helps."""
    from framefleet.tasks.enhance import EnhanceRequest
    from framefleet.tasks.enhance import enhance as do_enhance

    def body() -> None:
        settings = Settings.from_env()
        store = Store.open(settings)
        request = EnhanceRequest(
            scale=scale,
            model=model,
            backend=backend,
            device=device,
            weights=weights,
            fps=fps,
            interpolator=interpolator,
            segments=segments,
            force=force,
            gate=not no_gate,
            calibrate=not no_calibrate,
            thresholds=GateThresholds(target_short_side=target, min_quality=min_quality, min_short_side=min_size),
            ladder=parse_ladder(ladder) if ladder else (),
        )
        runner = None
        if ray_address is not None:  # the command picks the runtime; the task only runs what it is given
            from framefleet.fleet.ray_fleet import RaySegmentRunner

            runner = RaySegmentRunner(ray_address)
        with stage_progress(not as_json) as progress:
            r = do_enhance(
                store, source, request, settings=settings, output=output, progress=progress, segment_runner=runner
            )
        payload = {
            "asset_id": r.asset.id,
            "source": variant_dict(r.source),
            "gate": {**r.gate.to_dict(), "overridden": not r.gate.enhance and not request.gate},
            "variants": [variant_dict(v) for v in ([r.variant] if r.variant else []) + r.ladder],
            "created": r.created,
            "metrics": r.metrics,
            "skipped_rungs": r.skipped_rungs,
            "output": str(r.output) if r.output else None,
            "seconds": round(r.seconds, 2),
            "recovered": r.recovered,
        }
        emit(payload, as_json, lambda: _render(payload, request.ladder))

    run(as_json, body)


def _render(p: dict[str, Any], ladder: tuple[int, ...]) -> None:
    rec = p["recovered"]
    if rec.get("jobs") or rec.get("scratch"):
        jobs, scratch = len(rec["jobs"]), len(rec["scratch"])
        err.print(f"recovered after a killed run: {jobs} job(s) marked failed, {scratch} scratch entries removed")
    g = p["gate"]
    verdict = "[green]enhance[/]" if g["enhance"] else ("[yellow]override[/]" if g["overridden"] else "[red]skip[/]")
    out.print(f"gate: {verdict} ({g['rule']}): {g['reason']}")
    if not p["variants"]:
        out.print("no variant written; pass --no-gate to run the model anyway")
        return
    t = Table("variant", "size", "fps", "frames", "bytes", title=f"asset {p['asset_id']}", title_justify="left")
    for v in p["variants"]:
        t.add_row(
            v["name"], f"{v['width']}×{v['height']}", f"{v['fps']:.2f}", str(v["frame_count"]), f"{v['size_bytes']:,}"
        )
    out.print(t)
    enhanced = p["variants"][0]
    note = skipped_rungs_note(ladder, p["skipped_rungs"], min(enhanced["width"], enhanced["height"]))
    if note:
        out.print(f"ladder: {note}")
    m = p["metrics"]
    if (line := calibration_line(m)) is not None:
        out.print(line)
    if m.get("gain_vmaf") is not None:
        out.print(self_check_line(m))
    out.print(f"{'new' if p['created'] else 'existing'} variant → {p['output']}  ({p['seconds']:.1f} s)")


@app.command()
def quality(
    reference: Annotated[str, typer.Argument(help="The reference video.")],
    distorted: Annotated[str, typer.Argument(help="The video to score (same frames; scaled to the reference's size).")],
    subsample: Annotated[int, typer.Option(help="Score every N-th frame.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """PSNR, SSIM and VMAF of DISTORTED against REFERENCE (libvmaf)."""
    from framefleet.quality.fullref import full_reference

    def body() -> None:
        scores = full_reference(reference, distorted, subsample=subsample).to_dict()
        emit(
            scores,
            as_json,
            lambda: out.print(
                f"PSNR {scores['psnr']:.2f} dB   SSIM {scores['ssim']:.4f}   VMAF {scores['vmaf']:.2f} "
                f"(min {scores['vmaf_min']:.2f}, {scores['frames']} frames, {scores['model']})"
            ),
        )

    run(as_json, body)
