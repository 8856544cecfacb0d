"""What every task that writes a video variant shares: the row built from the file it stored, and
storing that row so a lost race or a failure never leaves an orphaned blob."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from framefleet._fs import scratch_file
from framefleet.media.probe import MediaInfo
from framefleet.store import Producer, Store, Variant
from framefleet.store.blobs import BlobRef


def video_variant(
    info: MediaInfo, ref: BlobRef, *, asset_id: str, name: str, parent_id: str, producer: Producer
) -> Variant:
    """A ready MP4 variant describing the stored file `ref`, probed as `info`."""
    v = info.video
    assert v is not None  # the caller just wrote a video
    return Variant(
        asset_id=asset_id,
        name=name,
        parent_id=parent_id,
        **producer.variant_columns(),
        blob_key=ref.key,
        container="mp4",
        video_codec=v.codec,
        audio_codec=info.audio.codec if info.audio else None,
        width=v.width,
        height=v.height,
        fps=v.fps,
        frame_count=v.frames,
        duration=info.duration,
        bitrate=info.bitrate,
        size_bytes=ref.size,
        metrics={},
        status="ready",
    )


def store_variant(
    store: Store, variant: Variant, *, new_blob: bool, replace_id: str | None = None
) -> tuple[Variant, bool]:
    """Insert `variant` (or recompute `replace_id` in place with its content); returns (row, created).

    `new_blob` says whether this task created the variant's blob (blobs are content-addressed, so an
    identical file may already belong to another variant): only then is it ours to delete when the row
    cannot be written, or when an identical job won the race and its row is returned instead."""
    key = variant.blob_key
    assert key is not None
    try:
        if replace_id is not None:
            return store.replace_variant(replace_id, variant), True
        stored, created = store.add_variant(variant)
    except BaseException:
        if new_blob:
            store.blobs.delete(key)
        raise
    if not created and new_blob and stored.blob_key != key:
        store.blobs.delete(key)
    return stored, created


def copy_out(blob: Path, dst: Path) -> Path:
    """Copy the stored file to the user's path atomically (a temp name in the same folder, then os.replace)."""
    with scratch_file(dst.parent, dst.suffix) as tmp:  # unique name: two copies to one path may race
        shutil.copyfile(blob, tmp)
        os.replace(tmp, dst)
    return dst


__all__ = ["copy_out", "store_variant", "video_variant"]
