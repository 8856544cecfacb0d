"""studies, study_items, study_raters and study_votes: crowd subjective studies over stored variants (one vote
per rater and item, enforced by a unique constraint)

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "study_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("asset_id", sa.String(32), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("left_variant_id", sa.String(32), sa.ForeignKey("variants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("right_variant_id", sa.String(32), sa.ForeignKey("variants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expected", sa.String(8), nullable=True),
        sa.UniqueConstraint("study_id", "position", name="uq_study_items_position"),
    )
    op.create_index("ix_study_items_study_id", "study_items", ["study_id"])
    op.create_table(
        "study_raters",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("items", JSONType, nullable=False),
        sa.Column("answered", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_vote_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_study_raters_study_id", "study_raters", ["study_id"])
    op.create_table(
        "study_votes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rater_id", sa.String(32), sa.ForeignKey("study_raters.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("study_items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("left_score", sa.Integer, nullable=False),
        sa.Column("right_score", sa.Integer, nullable=False),
        sa.Column("preference", sa.String(8), nullable=False),
        sa.Column("artifacts", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("rater_id", "item_id", name="uq_study_votes_rater_item"),
    )
    op.create_index("ix_study_votes_study_id", "study_votes", ["study_id"])


def downgrade() -> None:
    op.drop_index("ix_study_votes_study_id", "study_votes")
    op.drop_table("study_votes")
    op.drop_index("ix_study_raters_study_id", "study_raters")
    op.drop_table("study_raters")
    op.drop_index("ix_study_items_study_id", "study_items")
    op.drop_table("study_items")
    op.drop_table("studies")
