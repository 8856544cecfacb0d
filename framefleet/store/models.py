"""The data model: an Asset (one upload) has Variants (versions of it); Jobs record work done on assets.

A Variant is unique per (asset, producer), producer = model + version + hash of the parameters (the
parent variant included): asking twice for the same work finds the first result instead of writing a
second one, which is what makes retried jobs safe.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


def new_id() -> str:
    return secrets.token_hex(12)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("tenant", "sha256", name="uq_assets_tenant_sha256"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), default="local", index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "video" | "image"
    source_name: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    variants: Mapped[list[Variant]] = relationship(
        back_populates="asset", order_by="Variant.created_at", cascade="all, delete-orphan"
    )


class Variant(Base):
    __tablename__ = "variants"
    __table_args__ = (
        UniqueConstraint(
            "asset_id", "producer_model", "producer_version", "params_hash", name="uq_variants_asset_producer"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))  # "original", "h264-720p", ...
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("variants.id"), nullable=True)
    producer_model: Mapped[str] = mapped_column(String(128))
    producer_version: Mapped[str] = mapped_column(String(64))
    params_hash: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    blob_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    container: Mapped[str | None] = mapped_column(String(64), nullable=True)
    video_codec: Mapped[str | None] = mapped_column(String(32), nullable=True)
    audio_codec: Mapped[str | None] = mapped_column(String(32), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    frame_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    bitrate: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="ready")  # "ready" | "failed"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    asset: Mapped[Asset] = relationship(back_populates="variants")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant", "request_key", name="uq_jobs_tenant_request_key"),
        Index("ix_jobs_status_host", "status", "host"),  # each task's start looks for this host's running jobs
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), default="local", index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "encode", "synthetic", later "enhance", "animate", ...
    request_key: Mapped[str | None] = mapped_column(String(128), nullable=True)  # client's idempotency key
    asset_id: Mapped[str | None] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|succeeded|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # who runs a "running" job: a later process on the same host marks it failed once that process is gone
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Campaign(Base):
    """A one-day campaign. Its videos are variants of one asset (`asset_id`), one per recipient."""

    __tablename__ = "campaigns"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # the local date the videos open, ISO YYYY-MM-DD
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    # the kill switch: renderers stop taking new work within seconds of it being set
    killed: Mapped[bool] = mapped_column(Boolean, default=False)
    # the delivery throttle: the share of recipients (by a stable hash) who get their video; 0 pulls it back
    delivery_share: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CampaignRecipient(Base):
    """One recipient's outcome: rendered (with its variant), skipped (with the reason) or failed."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (Index("ix_campaign_recipients_status", "campaign", "status"),)

    campaign: Mapped[str] = mapped_column(ForeignKey("campaigns.name", ondelete="CASCADE"), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # "rendered" | "skipped" | "failed"
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    tz: Mapped[str] = mapped_column(String(64))
    opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # local midnight of the day, in UTC
    variant_id: Mapped[str | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"), nullable=True)
    machine: Mapped[str | None] = mapped_column(String(128), nullable=True)
    render_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Study(Base):
    """A subjective study: side-by-side items over stored variants, rated by people holding rater tokens.

    `config` keeps what the study was built from (assets, variant labels, pairing, seed) and each stimulus'
    label and metrics, so the analysis reads the study as it was when created."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StudyItem(Base):
    """One side-by-side comparison: two variants of one asset, sides and order drawn at random. Gold and trap
    items carry the answer a careful rater gives (`expected`: left | right | same)."""

    __tablename__ = "study_items"
    __table_args__ = (UniqueConstraint("study_id", "position", name="uq_study_items_position"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # "pair" | "gold" | "trap"
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    left_variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    right_variant_id: Mapped[str] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    expected: Mapped[str | None] = mapped_column(String(8), nullable=True)


class StudyRater(Base):
    """One rater's session: the secret token of their link and the items they see, in their order."""

    __tablename__ = "study_raters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    items: Mapped[list[str]] = mapped_column(JSONType, default=list)  # item ids, in the order shown
    answered: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_vote_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StudyVote(Base):
    """A rater's answer to one item; at most one per (rater, item), enforced by the database."""

    __tablename__ = "study_votes"
    __table_args__ = (UniqueConstraint("rater_id", "item_id", name="uq_study_votes_rater_item"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[str] = mapped_column(ForeignKey("study_raters.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(ForeignKey("study_items.id", ondelete="CASCADE"))
    left_score: Mapped[int] = mapped_column(Integer)
    right_score: Mapped[int] = mapped_column(Integer)
    preference: Mapped[str] = mapped_column(String(8))  # "left" | "right" | "same"
    artifacts: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
