"""Encode an asset's ABR ladder: one H.264 (or AV1) rendition per rung, each a Variant of the asset.

Idempotent per rung: a rung already encoded with the same settings from the same parent is returned as
it is. A rung that fails leaves no row and no blob; rungs finished before it stay (they are complete).

    framefleet encode ASSET_ID --ladder 720,480 --json
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from framefleet._fs import scratch_file
from framefleet.config import Settings
from framefleet.errors import InputError
from framefleet.media.encode import EncodeSettings, transcode
from framefleet.media.ladder import Rung, plan_ladder
from framefleet.media.probe import probe
from framefleet.store import Asset, Producer, Store, Variant
from framefleet.tasks._variants import store_variant, video_variant
from framefleet.tasks.ingest import ORIGINAL

ENCODER_VERSION = "1"  # bump when the encode recipe changes output for the same parameters

Progress = Callable[[Rung, int, int], None]  # (rung, frames done, frames total)


@dataclass
class EncodeResult:
    asset: Asset
    variants: list[Variant] = field(default_factory=list)
    created: list[bool] = field(default_factory=list)
    skipped_rungs: list[int] = field(default_factory=list)  # above the source: a ladder never upscales
    seconds: dict[str, float] = field(default_factory=dict)  # rung name -> encode wall time


def encode_ladder(
    store: Store,
    asset_id: str,
    *,
    rungs: Sequence[int] | None = None,
    encode: EncodeSettings | None = None,
    settings: Settings | None = None,
    source_variant: str = ORIGINAL,
    tenant: str = "local",
    progress: Progress | None = None,
) -> EncodeResult:
    settings = settings or Settings.from_env()
    encode = encode or EncodeSettings()
    asset = store.get_asset(asset_id, tenant)
    if asset.kind != "video":
        raise InputError(f"asset {asset_id} is an {asset.kind}; an ABR ladder needs a video asset")
    parent = next((v for v in asset.variants if v.name == source_variant and v.status == "ready"), None)
    if parent is None or parent.blob_key is None or parent.width is None or parent.height is None:
        raise InputError(f"asset {asset_id} has no ready variant named {source_variant!r} to encode from")
    src = store.blobs.open_path(parent.blob_key)
    src_video = probe(src, verify=False).video  # header only: the stored original was verified at ingest
    source_kbps = src_video.bitrate // 1000 if src_video and src_video.bitrate else None
    planned, skipped = plan_ladder(parent.width, parent.height, rungs or settings.ladder, encode.codec, source_kbps)
    result = EncodeResult(asset=asset, skipped_rungs=skipped)
    store.recover_abandoned()  # jobs and scratch files a killed earlier run left
    job = store.start_job("encode", asset.id, {"rungs": [r.name for r in planned], **encode.as_params()}, tenant)
    try:
        for rung in planned:
            t0 = time.perf_counter()
            variant, created = _encode_rung(store, settings, asset, parent, src, rung, encode, progress)
            result.variants.append(variant)
            result.created.append(created)
            result.seconds[rung.name] = time.perf_counter() - t0
    except BaseException as e:
        store.finish_job(job, error=str(e) or type(e).__name__)
        raise
    store.finish_job(job, result={"variants": [v.id for v in result.variants], "seconds": result.seconds})
    return result


def _encode_rung(
    store: Store,
    settings: Settings,
    asset: Asset,
    parent: Variant,
    src: Path,
    rung: Rung,
    encode: EncodeSettings,
    progress: Progress | None,
) -> tuple[Variant, bool]:
    params = {
        "parent": parent.id,
        "width": rung.width,
        "height": rung.height,
        "maxrate_kbps": rung.maxrate_kbps,
        **encode.as_params(),
    }
    producer = Producer(f"abr-{encode.codec}", ENCODER_VERSION, params)
    existing = store.find_variant(asset.id, producer)
    if existing is not None and existing.status == "ready":
        return existing, False
    total = parent.frame_count or 0
    on_frame = (lambda n: progress(rung, n, total)) if progress else None
    with scratch_file(settings.tmp_dir, ".mp4") as tmp:
        transcode(src, tmp, rung, encode, on_frame=on_frame)
        info = probe(tmp, verify=False)
        ref = store.blobs.put_file(tmp, move=True)
    variant = video_variant(
        info, ref, asset_id=asset.id, name=f"{encode.codec}-{rung.name}", parent_id=parent.id, producer=producer
    )
    return store_variant(store, variant, new_blob=ref.created)
