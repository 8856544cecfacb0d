"""Shared by the study tests: an asset from a tiny real-encoded clip with stand-in "enhanced" variants (rows over
the original's bytes, so no model runs) and a study over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from framefleet.config import Settings
from framefleet.store import Producer, Store, Variant
from framefleet.tasks.ingest import ingest

STUDY_TABLES = ("studies", "study_items", "study_raters", "study_votes")


def study_asset(store: Store, clip: Path, settings: Settings, models: tuple[str, ...] = ("espcn", "bicubic")) -> str:
    """Ingest `clip` and add one variant per model, named and produced as `enhance --model M` names them."""
    asset = ingest(clip, store, settings=settings).asset
    original = next(v for v in asset.variants if v.name == "original")
    for k, model in enumerate(models):
        producer = Producer(f"enhance-{model}", "1", {"parent": original.id, "model": model})
        metrics = {"proxy": {"model": {"psnr": 30.0 + k, "ssim": 0.9 + k / 100, "vmaf": 80.0 + 5 * k}}}
        row = Variant(asset_id=asset.id, name=f"enhanced-{model}-x2", parent_id=original.id,
                      **producer.variant_columns(), blob_key=original.blob_key, container="mp4",
                      video_codec=original.video_codec, width=original.width, height=original.height,
                      fps=original.fps, frame_count=original.frame_count, duration=original.duration,
                      size_bytes=original.size_bytes, metrics=metrics, status="ready")  # fmt: skip
        store.add_variant(row)
    return asset.id


def table_counts(store: Store, tables: tuple[str, ...] = (*STUDY_TABLES, "variants")) -> dict[str, int]:
    with store.engine.connect() as c:
        return {t: c.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in tables}


def good_vote(item: str, **change: Any) -> dict[str, Any]:
    return {"item": item, "left_score": 4, "right_score": 2, "preference": "left", "artifacts": ["blur"], **change}
