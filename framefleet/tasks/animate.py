"""Animate: a still image (+ an optional prompt) → a short video, stored as a variant of the image's asset.

Idempotent: the variant is unique per (asset, producer = model + version + parameter hash, seed and every
switch that changes the output's bits included), so the same request twice returns the stored variant
without rendering again; `force` renders it again in place. Every parameter is checked and the model is
loaded *before* anything is stored, so bad input leaves no asset, row or blob behind.

    framefleet animate photo.jpg --prompt "pan left" --json

`ModelCache` keeps loaded pipelines by (model, device, switches): the CLI makes one per call, a serving
worker keeps one for its whole life (load once, warm, then one request at a time).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from framefleet._fs import scratch_dir
from framefleet.config import Settings
from framefleet.errors import InputError
from framefleet.media.encode import EncodeSettings, encode_frames
from framefleet.media.image import load_image
from framefleet.media.probe import probe
from framefleet.store import Asset, Producer, Store, Variant
from framefleet.tasks._variants import copy_out, store_variant, video_variant
from framefleet.tasks.ingest import ORIGINAL, ingest

VERSION = "1"  # bump when the recipe around the model (preprocessing, encode) changes its output
ENCODE = EncodeSettings(crf=16, preset="veryfast")
SAMPLERS = ("euler", "dpmpp", "ddim")
MAX_PROMPT = 500

Progress = Callable[[int, int], None]  # (steps done, steps)


@dataclass(frozen=True)
class AnimateRequest:
    prompt: str = ""
    model: str = "student"  # "student", "teacher" or a diffusers folder
    sampler: str | None = None  # None: the model folder's own scheduler (euler for ours)
    steps: int | None = None  # None: the folder's own (framefleet.json: 8 for our student), else 32
    guidance_image: float = 1.5
    guidance_text: float = 4.0
    frames: int | None = None  # None: the model's
    fps: int = 8
    seed: int = 0
    bf16: bool = False
    compile: bool = False
    shared_context: bool = True
    device: str = "auto"
    force: bool = False

    def check(self) -> None:
        """Everything that can be checked without the model."""
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps {self.steps}: give at least 1 denoising step")
        if self.frames is not None and self.frames < 1:
            raise InputError(f"--frames {self.frames}: give at least 1 frame")
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if not 1 <= self.fps <= 120:
            raise InputError(f"--fps {self.fps}: give 1 to 120 frames per second")
        if self.guidance_image < 0 or self.guidance_text < 0:
            raise InputError("guidance scales must be ≥ 0 (1 means no guidance)")
        if len(self.prompt) > MAX_PROMPT:
            raise InputError(f"the prompt has {len(self.prompt)} characters; keep it under {MAX_PROMPT}")


@dataclass
class AnimateResult:
    asset: Asset
    variant: Variant
    created: bool
    model: str
    sampler: str
    steps: int
    denoiser_passes: int
    frames: int
    fps: int
    output: Path
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device here; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"--device {device}: give auto, cpu or cuda[:N]")
    return device


def model_fingerprint(folder: Path) -> str:
    """A short content hash of a model folder: every file's path, size and first MiB (weights differ early)."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder)}:{f.stat().st_size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


class ModelCache:
    """Loaded pipelines by (folder, device, switches); one per process."""

    def __init__(self) -> None:
        self._pipes: dict[tuple[str, str, bool, bool, bool], Any] = {}

    def get(self, request: AnimateRequest, device: str) -> tuple[Any, Path, str]:
        from framefleet.models.animate.loading import load_pipeline, resolve_model

        folder = resolve_model(request.model).resolve()
        key = (str(folder), device, request.bf16, request.compile, request.shared_context)
        if key not in self._pipes:
            pipe = load_pipeline(folder, device=device)
            pipe.enable_bf16(request.bf16)
            pipe.enable_shared_context(request.shared_context)
            if request.compile:
                pipe.compile_components()
            pipe.fingerprint = model_fingerprint(folder)
            self._pipes[key] = pipe
        return self._pipes[key], folder, self._pipes[key].fingerprint


def _source_image(store: Store, source: str, settings: Settings, tenant: str) -> Asset:
    path = Path(source)
    if path.exists():
        asset = ingest(path, store, settings=settings, tenant=tenant).asset
    elif path.suffix or "/" in source:
        raise InputError(f"{source} does not exist; pass an image file or an asset id")
    else:
        asset = store.get_asset(source, tenant)
    if asset.kind != "image":
        raise InputError(
            f"asset {asset.id} is a {asset.kind}; animate takes a still image{_video_hint(asset.kind, asset.id)}"
        )
    return asset


def check_image_file(source: str, settings: Settings) -> None:
    """Probe a path before anything is stored (ingest would store a valid image even if animate then fails)."""
    path = Path(source)
    if path.exists():
        info = probe(path, verify=True, max_pixels=settings.max_image_pixels)
        if info.kind != "image":
            hint = _video_hint(info.kind, source)
            raise InputError(f"{source} is a {info.kind}; animate takes a still image (PNG, JPEG, WebP){hint}")


def _video_hint(kind: str, source: str) -> str:
    """What to run instead when a video was given: enhance works on videos."""
    return f". To enhance a video, run `framefleet enhance {source}`" if kind == "video" else ""


def animate(
    store: Store,
    source: str,
    request: AnimateRequest,
    *,
    settings: Settings | None = None,
    tenant: str = "local",
    output: str | Path | None = None,
    models: ModelCache | None = None,
    progress: Progress | None = None,
) -> AnimateResult:
    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    request.check()
    if output is not None and Path(output).suffix.lower() != ".mp4":
        raise InputError(f"-o {output}: the video is an MP4; give a path ending in .mp4")
    store.recover_abandoned()  # jobs and scratch folders a killed earlier run left
    device = resolve_device(request.device)
    pipe, folder, fingerprint = (models or ModelCache()).get(request, device)
    sampler = request.sampler or pipe.default_sampler
    steps = request.steps or pipe.default_steps
    frames = request.frames or pipe.family.default_frames()
    pipe.check(frames, steps, sampler)
    if request.prompt.strip() and not pipe.family.has_text:
        raise InputError(f"{folder.name}: this model takes no text prompt; leave out --prompt")
    check_image_file(source, settings)
    asset = _source_image(store, source, settings, tenant)
    parent = next((v for v in asset.variants if v.name == ORIGINAL and v.status == "ready"), None)
    if parent is None or parent.blob_key is None:
        raise InputError(f"asset {asset.id} has no ready original image to animate")
    params = {
        "parent": parent.id,
        "model": {"folder": folder.name, "fingerprint": fingerprint},
        **{k: v for k, v in asdict(request).items() if k not in ("model", "device", "force", "sampler", "steps")},
        "sampler": sampler,
        "steps": steps,
        "frames": frames,
        "device": device.split(":")[0],
        "encode": ENCODE.as_params(),
    }
    producer = Producer(f"animate-{folder.name}", VERSION, params)
    model_name = request.model if request.model in ("student", "teacher") else str(folder)
    existing = store.find_variant(asset.id, producer)
    passes = steps * len(pipe.conditions_for(request.prompt, request.guidance_image, request.guidance_text))
    if existing is not None and existing.status == "ready" and not request.force:
        variant, created = existing, False
        timings: dict[str, float] = {}
    else:
        job = store.start_job("animate", asset.id, {"producer": producer.model, **params}, tenant)
        try:
            variant, timings, passes = _render(
                store, settings, asset, parent, pipe, request, producer, sampler, steps, frames, progress
            )
            variant, created = store_variant(
                store, variant, new_blob=True, replace_id=existing.id if existing is not None else None
            )
        except BaseException as e:
            store.finish_job(job, error=str(e) or type(e).__name__)
            raise
        store.finish_job(job, result={"variant": variant.id})
    assert variant.blob_key is not None
    blob = store.blobs.open_path(variant.blob_key)
    out = copy_out(blob, Path(output)) if output is not None else blob
    return AnimateResult(
        asset,
        variant,
        created,
        model_name,
        sampler,
        steps,
        passes,
        frames,
        request.fps,
        out,
        time.perf_counter() - t0,
        timings,
    )


def _render(
    store: Store,
    settings: Settings,
    asset: Asset,
    parent: Variant,
    pipe: Any,
    request: AnimateRequest,
    producer: Producer,
    sampler: str,
    steps: int,
    frames: int,
    progress: Progress | None,
) -> tuple[Variant, dict[str, float], int]:
    assert parent.blob_key is not None
    image = load_image(store.blobs.open_path(parent.blob_key), max_pixels=settings.max_image_pixels)
    result = pipe(
        image,
        request.prompt,
        num_frames=frames,
        num_inference_steps=steps,
        sampler=sampler,
        guidance_image=request.guidance_image,
        guidance_text=request.guidance_text,
        seed=request.seed,
        progress=progress,
    )
    with scratch_dir(settings.tmp_dir, "animate") as d:
        video = d / "animated.mp4"
        encode_frames(result.frames, video, fps=request.fps, settings=ENCODE)
        info = probe(video, verify=False)
        ref = store.blobs.put_file(video, move=True)
    name = f"animated-{producer.params_hash[:10]}"
    variant = video_variant(info, ref, asset_id=asset.id, name=name, parent_id=parent.id, producer=producer)
    variant.metrics = {"denoiser_passes": result.denoiser_passes, "seconds": result.seconds, "prompt": request.prompt}
    return variant, result.seconds, result.denoiser_passes


__all__ = ["AnimateRequest", "AnimateResult", "ModelCache", "animate"]
