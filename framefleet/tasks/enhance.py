"""Enhance: upscale (and optionally double the frame rate of) a video into a new variant of its asset,
gated by a no-reference quality estimate, processed in keyframe segments in parallel, then optionally
encoded into an ABR ladder.

Idempotent: the variant is unique per (asset, producer = model + version + parameter hash), so a rerun
returns the existing variant; `force` recomputes it in place (and drops the ladder rungs made from it).
Nothing half-written survives a failure: scratch files are removed and rows are added last.

    framefleet enhance clip.mp4 --scale 2 --segments 2 --json
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from framefleet._fs import scratch_dir
from framefleet.config import Settings
from framefleet.errors import InputError
from framefleet.media.decode import iter_frames, iter_timed_frames
from framefleet.media.encode import EncodeSettings
from framefleet.media.mux import mux_audio
from framefleet.media.probe import MediaInfo, probe
from framefleet.media.segments import join_segments, split_video
from framefleet.models.interpolate import load_interpolator
from framefleet.models.upscale import default_model
from framefleet.models.upscale.base import cpu_threads
from framefleet.models.upscale.blend import MIN_SIDE, BlendFit, fit_blend
from framefleet.models.upscale.classical import RESAMPLERS
from framefleet.quality.gate import GateDecision, GateInput, GateThresholds, decide
from framefleet.quality.noref import estimate_quality
from framefleet.store import Asset, Producer, Store, Variant
from framefleet.tasks import segment_worker as sw
from framefleet.tasks._variants import copy_out, store_variant, video_variant
from framefleet.tasks.encode import encode_ladder
from framefleet.tasks.gain import measure_gain
from framefleet.tasks.ingest import ORIGINAL, ingest

VERSION = "1"  # bump when the recipe (not the model) changes the output for the same parameters
# The enhanced variant's file, from which its ladder is encoded: lossless (x264 at CRF 0, in yuv420p), so the file
# keeps the model's gain. benchmarks/mezzanine_benchmark.py (ESPCN v4, first 24 frames, ×½ INTER_AREA then ×2;
# PSNR-Y loss = in memory minus file; bikes / bigbuckbunny / carphone):
#   CRF 16 (before): 0.71 / 0.79 / 0.15 dB, VMAF 1.9 / 2.4 / 1.8;  CRF 8: 0.24 / 0.16 / 0.03 dB;
#   CRF 2: 0.087 / 0.052 / 0.006 dB (no margin for a sharper model);  CRF 0: 0 / 0 / 0 dB and VMAF.
# The price is size: 4.7 / 47.5 / 2.4 Mb/s (CRF 16: 0.5 / 4.4 / 0.2 Mb/s). Among the lossless presets, veryfast's
# file is 3.5-7% larger than medium's for 0.41-0.58 of its encoder CPU time (ultrafast: 1.17-1.35× the bytes).
# Lossless H.264 is the High 4:4:4 Predictive profile, which many hardware decoders do not play: serve the rungs.
CALIBRATION_FRAMES = 16  # spread over the clip: bikes changes, and its first 8 frames alone mislead
MEZZANINE = EncodeSettings(crf=0, preset="veryfast")

Progress = Callable[[str, int, int], None]  # (stage, done, total)
# How a multi-segment job runs: write the processed `parts[k]` to `outs[k]` for every k, reporting frames done to
# `progress` if it can. A task never picks its runtime: the caller passes one (fleet.ray_fleet.RaySegmentRunner
# runs them as Ray tasks); the default, `run_segments_locally`, uses local worker processes.
SegmentRunner = Callable[[Sequence[sw.SegmentJob], Sequence[Path], Sequence[Path], int, Progress | None], None]


@dataclass(frozen=True)
class EnhanceRequest:
    scale: int = 2
    model: str | None = None  # None: our CPU model without a GPU, Real-ESRGAN compact with one
    backend: str | None = None
    device: str = "auto"
    weights: str | None = None
    fps: float | None = None  # target frame rate: twice the source's (motion-compensated interpolation)
    interpolator: str = "dis"
    segments: int = 1
    force: bool = False
    gate: bool = True  # False: run the model whatever the gate says (the decision is still reported)
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    ladder: tuple[int, ...] = ()
    measure_gain: bool = True
    calibrate: bool = True  # blend a learned model with Lanczos by weights fitted on the clip (upscale/blend.py)


@dataclass
class EnhanceResult:
    asset: Asset
    source: Variant
    gate: GateDecision
    variant: Variant | None = None
    created: bool = False
    ladder: list[Variant] = field(default_factory=list)
    skipped_rungs: list[int] = field(default_factory=list)  # ladder rungs above the enhanced video (not made)
    output: Path | None = None
    seconds: float = 0.0
    recovered: dict[str, list[str]] = field(default_factory=dict)  # see Store.recover_abandoned

    @property
    def metrics(self) -> dict[str, Any]:
        if self.variant is not None:
            return dict(self.variant.metrics)
        return {"input_estimated_vmaf": round(self.gate.estimated_vmaf, 2)}


def _resolve_source(
    store: Store, source: str, settings: Settings, tenant: str, fps: float | None
) -> tuple[Asset, Variant, Path, MediaInfo, Fraction, bool]:
    """(asset, its original, the original's file, its probe, output rate, doubling). A file is checked (a video,
    a frame rate we can double) before it is ingested, so a rejected input leaves no asset behind."""
    path = Path(source)
    if path.exists():
        info = probe(path, verify=False, max_pixels=settings.max_image_pixels)  # header: cheap, stores nothing
        _check_video(info.kind, str(path), source)
        _target_rate(info, fps)
        asset = ingest(path, store, settings=settings, tenant=tenant).asset  # validates: corrupt, truncated, ...
    elif path.suffix or "/" in source:
        raise InputError(f"{source} does not exist; pass a video file or an asset id")
    else:
        asset = store.get_asset(source, tenant)
        _check_video(asset.kind, f"asset {asset.id}", asset.id)
    parent = next((v for v in asset.variants if v.name == ORIGINAL and v.status == "ready"), None)
    if parent is None or parent.blob_key is None:
        raise InputError(f"asset {asset.id} has no ready original variant to enhance")
    src = store.blobs.open_path(parent.blob_key)
    info = probe(src, verify=False)
    return asset, parent, src, info, *_target_rate(info, fps)


def _check_video(kind: str, what: str, source: str) -> None:
    if kind != "video":
        raise InputError(
            f"{what} is an {kind}; enhance takes a video. To make a video from an image, run "
            f"`framefleet animate {source}` (see `framefleet animate --help`)"
        )


def _target_rate(info: MediaInfo, fps: float | None) -> tuple[Fraction, bool]:
    assert info.video is not None
    src = Fraction(info.video.fps).limit_denominator(100_000) if info.video.fps else Fraction(25)
    if fps is None:
        return src, False
    if fps <= 0 or abs(fps - 2 * float(src)) > 0.01 * 2 * float(src):
        raise InputError(
            f"--fps {fps:g}: the source runs at {float(src):.3g} fps and frame-rate up-conversion doubles it; "
            f"pass --fps {2 * float(src):.3g} or leave --fps out"
        )
    return 2 * src, True


def enhance(
    store: Store,
    source: str,
    request: EnhanceRequest,
    *,
    settings: Settings | None = None,
    tenant: str = "local",
    output: str | Path | None = None,
    progress: Progress | None = None,
    segment_runner: SegmentRunner | None = None,
) -> EnhanceResult:
    """Enhance `source` (a file, ingested first, or an asset id). With `request.segments` > 1 the segments run
    through `segment_runner` (default: local worker processes)."""
    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    if request.segments < 1:
        raise InputError(f"--segments must be ≥ 1, got {request.segments}")
    if output is not None and Path(output).suffix.lower() != ".mp4":
        raise InputError(f"-o {output}: the enhanced video is an MP4; give a path ending in .mp4")
    recovered = store.recover_abandoned()  # what a killed earlier run left: its jobs, its scratch folders
    spec = _model_spec(request, settings)
    upscaler = sw._upscaler(spec)  # fails fast on an unknown model or an unsupported scale
    asset, parent, src, info, rate, doubling = _resolve_source(store, source, settings, tenant, request.fps)
    assert info.video is not None
    if doubling:
        spec = sw.ModelSpec(**{**spec.__dict__, "interpolator": request.interpolator})
        interp = load_interpolator(request.interpolator)

    estimate = estimate_quality(src)
    gate = decide(GateInput(info.width or 0, info.height or 0, estimate.vmaf, request.scale), request.thresholds)
    result = EnhanceResult(asset=asset, source=parent, gate=gate, recovered=recovered)
    if not gate.enhance and request.gate:
        result.seconds = time.perf_counter() - t0
        return result

    calibration = _calibrate(src, spec, info.video.frames or 0) if request.calibrate else None
    if calibration is not None:
        spec = dataclasses.replace(spec, blend=calibration.weights)
        upscaler = sw._upscaler(spec)
    params: dict[str, Any] = {
        "parent": parent.id,
        "model": {"name": upscaler.name, "version": upscaler.version, **upscaler.params()},
        "encode": MEZZANINE.as_params(),
    }
    if doubling:
        params["interpolate"] = {"name": interp.name, "version": interp.version, **interp.params(), "fps": float(rate)}
    producer = Producer(f"enhance-{upscaler.name}", VERSION, params)
    existing = store.find_variant(asset.id, producer)
    if existing is not None and existing.status == "ready" and not request.force:
        result.variant, result.created = existing, False
    else:
        job = store.start_job("enhance", asset.id, {"producer": producer.model, **params}, tenant)
        try:
            variant, new_blob = _compute(
                store, settings, asset, parent, src, info, spec, rate, producer, request, progress, segment_runner
            )
            variant.metrics = {
                "gate": gate.to_dict(),
                "input_estimated_vmaf": round(estimate.vmaf, 2),
                "calibration": calibration.to_dict() if calibration is not None else None,
                **(measure_gain(src, spec, settings.tmp_dir, mezzanine=MEZZANINE) if request.measure_gain else {}),
                "rotation_applied": info.video.rotation,
            }
            result.variant, result.created = store_variant(
                store, variant, new_blob=new_blob, replace_id=existing.id if existing is not None else None
            )
        except BaseException as e:
            store.finish_job(job, error=str(e) or type(e).__name__)
            raise
        store.finish_job(job, result={"variant": result.variant.id})
    assert result.variant is not None and result.variant.blob_key is not None
    if request.ladder:
        ladder = encode_ladder(
            store, asset.id, rungs=request.ladder, settings=settings, source_variant=result.variant.name, tenant=tenant
        )
        result.ladder, result.skipped_rungs = ladder.variants, ladder.skipped_rungs
    blob = store.blobs.open_path(result.variant.blob_key)
    result.output = copy_out(blob, Path(output)) if output is not None else blob
    result.seconds = time.perf_counter() - t0
    return result


def _calibrate(src: Path, spec: sw.ModelSpec, total: int) -> BlendFit | None:
    """The model's blend weights against Lanczos on CALIBRATION_FRAMES frames spread over the clip; None for the
    plain resizes (nothing to blend) and for clips too small to downscale once more."""
    if spec.model in RESAMPLERS:
        return None
    n = max(total, CALIBRATION_FRAMES)
    wanted = {round(i * (n - 1) / max(CALIBRATION_FRAMES - 1, 1)) for i in range(CALIBRATION_FRAMES)}
    # Decoding the whole clip costs a small part of upscaling it (540p: ~500 vs ~10 frames/s).
    frames = [f for i, f in enumerate(itertools.islice(iter_frames(src), n)) if i in wanted]  # [H, W, 3] uint8 each
    h, w = frames[0].shape[:2] if frames else (0, 0)
    if min(h, w) < MIN_SIDE * spec.scale:
        return None
    return fit_blend(np.stack(frames), sw._upscaler(spec), scale=spec.scale)


def _model_spec(request: EnhanceRequest, settings: Settings) -> sw.ModelSpec:
    return sw.ModelSpec(
        model=request.model or default_model(),
        scale=request.scale,
        backend=request.backend,
        device=request.device,
        weights=request.weights,
        cache_dir=str(settings.home / "models"),
    )


def variant_name(spec: sw.ModelSpec, rate: Fraction | None) -> str:
    name = f"enhanced-{spec.model}-x{spec.scale}"
    return f"{name}-{float(rate):.4g}fps" if rate is not None and spec.interpolator else name


def _compute(
    store: Store,
    settings: Settings,
    asset: Asset,
    parent: Variant,
    src: Path,
    info: MediaInfo,
    spec: sw.ModelSpec,
    rate: Fraction,
    producer: Producer,
    request: EnhanceRequest,
    progress: Progress | None,
    segment_runner: SegmentRunner | None = None,
) -> tuple[Variant, bool]:
    """The enhanced variant (not yet stored) and whether its blob is new (ours to delete on failure)."""
    assert info.video is not None
    with scratch_dir(settings.tmp_dir, "enhance") as work:
        parts = split_video(src, work / "parts", request.segments) if request.segments > 1 else [src]
        jobs = _segment_jobs(parts, spec, rate, info.video.rotation)
        outs = [work / f"out-{k:03d}.mp4" for k in range(len(parts))]
        total = info.video.frames or 0
        if len(parts) == 1:
            done = 0

            def tick(n: int) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress("enhance", done, total)

            sw.process_segment(jobs[0], parts[0], outs[0], tick)
        else:
            (segment_runner or run_segments_locally)(jobs, parts, outs, total, progress)
        video = work / "video.mp4"
        if len(outs) > 1:
            join_segments(outs, video)
        else:
            video = outs[0]
        final = work / "enhanced.mp4"
        mux_audio(video, src, final)
        out_info = probe(final, verify=False)
        ref = store.blobs.put_file(final, move=True)
    variant = video_variant(
        out_info, ref, asset_id=asset.id, name=variant_name(spec, rate), parent_id=parent.id, producer=producer
    )
    return variant, ref.created


def _segment_jobs(parts: Sequence[Path], spec: sw.ModelSpec, rate: Fraction, rotation: int) -> list[sw.SegmentJob]:
    jobs = []
    for k in range(len(parts)):
        following, following_time = None, None
        if spec.interpolator is not None and k + 1 < len(parts):
            first = next(iter_timed_frames(parts[k + 1], apply_rotation=False))
            r = rotation // 90
            following = np.ascontiguousarray(np.rot90(first.image, r)) if r else first.image
            following_time = first.time
        jobs.append(sw.SegmentJob(spec, MEZZANINE, rate, rotation, following, following_time))
    return jobs


def run_segments_locally(
    jobs: Sequence[sw.SegmentJob], parts: Sequence[Path], outs: Sequence[Path], total: int, progress: Progress | None
) -> None:
    """Segments in local worker processes (spawned: a forked copy of a process that has started torch's
    or ONNX Runtime's thread pools can deadlock), the cores shared among them."""
    ctx = mp.get_context("spawn")
    workers = max(1, min(len(jobs), cpu_threads()))
    threads = max(1, cpu_threads() // workers)
    counter = ctx.Value("q", 0)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=sw.init_worker, initargs=(threads, counter)) as pool:
        futures = [
            pool.submit(sw.process_segment_in_pool, job, str(p), str(o))
            for job, p, o in zip(jobs, parts, outs, strict=True)
        ]
        try:
            while not all(f.done() for f in futures):
                time.sleep(0.2)
                if progress is not None:
                    progress("enhance", int(counter.value), total)
            for f in futures:
                f.result()  # re-raises a worker's error here
        except BaseException:  # Ctrl-C, SIGTERM (raised here by the CLI) or a failed segment
            for f in futures:
                f.cancel()
            _stop_workers(pool)
            raise


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers now: the pool's own exit would wait for every running segment to finish, and a
    supervisor that follows SIGTERM with SIGKILL after a grace period would kill us before we clean up."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
