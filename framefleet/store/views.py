"""Plain-dict views of store rows: what the CLI prints with --json and the HTTP API returns."""

from __future__ import annotations

from typing import Any

from framefleet.store.models import Asset, Job, Variant


def variant_dict(v: Variant) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.name,
        "parent_id": v.parent_id,
        "producer": {"model": v.producer_model, "version": v.producer_version, "params_hash": v.params_hash},
        "params": v.params,
        "blob_key": v.blob_key,
        "container": v.container,
        "video_codec": v.video_codec,
        "audio_codec": v.audio_codec,
        "width": v.width,
        "height": v.height,
        "fps": v.fps,
        "frame_count": v.frame_count,
        "duration": v.duration,
        "bitrate": v.bitrate,
        "size_bytes": v.size_bytes,
        "metrics": v.metrics,
        "status": v.status,
        "created_at": v.created_at.isoformat() if v.created_at else None,
    }


def asset_dict(a: Asset) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "source_name": a.source_name,
        "sha256": a.sha256,
        "size_bytes": a.size_bytes,
        "created_at": a.created_at.isoformat() if a.created_at else None,
        "variants": [variant_dict(v) for v in a.variants],
    }


def job_dict(j: Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "kind": j.kind,
        "asset_id": j.asset_id,
        "status": j.status,
        "error": j.error,
        "params": j.params,
        "result": j.result,
    }
