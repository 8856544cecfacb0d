"""Ingest: validate a video or image file, store its bytes, record an Asset with its original Variant.

All or nothing: a file that fails validation leaves no row and no blob; a file whose bytes were already
ingested (by this tenant) returns the existing asset rather than a copy.

    framefleet ingest clip.mp4 --json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from framefleet.config import Settings
from framefleet.media.formats import content_suffix
from framefleet.media.probe import MediaInfo, probe
from framefleet.store import Asset, Producer, Store, Variant, sha256_file

ORIGINAL = "original"
UPLOAD_PRODUCER = ("upload", "1")


@dataclass(frozen=True)
class IngestResult:
    asset: Asset
    created: bool
    info: MediaInfo


def _original_variant(info: MediaInfo, key: str, sha: str, size: int) -> Variant:
    producer = Producer(*UPLOAD_PRODUCER, params={"sha256": sha})
    v = info.video
    return Variant(
        name=ORIGINAL,
        parent_id=None,
        **producer.variant_columns(),
        blob_key=key,
        container=info.container,
        video_codec=v.codec if v else (info.image.format.lower() if info.image else None),
        audio_codec=info.audio.codec if info.audio else None,
        width=info.width,
        height=info.height,
        fps=v.fps if v else None,
        frame_count=v.frames if v else 1,
        duration=info.duration,
        bitrate=info.bitrate,
        size_bytes=size,
        status="ready",
        metrics={"vfr": v.vfr, "rotation": v.rotation} if v else {},
    )


def ingest(path: str | Path, store: Store, *, settings: Settings | None = None, tenant: str = "local") -> IngestResult:
    settings = settings or Settings.from_env()
    src = Path(path)
    info = probe(src, verify=True, max_pixels=settings.max_image_pixels)  # raises InputError on bad input
    sha = sha256_file(src)
    existing = store.find_asset_by_sha(sha, tenant)
    if existing is not None:
        return IngestResult(existing, False, info)
    ref = store.blobs.put_file(src, suffix=content_suffix(info, src.name))  # a JPEG called .mp4 is stored as .jpg
    try:
        asset = Asset(tenant=tenant, kind=info.kind, source_name=src.name[:512], sha256=sha, size_bytes=ref.size)
        asset, created = store.create_asset(asset, _original_variant(info, ref.key, sha, ref.size))
    except BaseException:
        if ref.created:
            store.blobs.delete(ref.key)
        raise
    if not created and ref.created and all(v.blob_key != ref.key for v in asset.variants):
        store.blobs.delete(ref.key)  # lost a race with an identical ingest that stored under another name
    return IngestResult(asset, created, info)
