"""campaigns and campaign_recipients: one row per campaign (kill switch, delivery throttle) and one per
recipient (rendered / skipped / failed, the variant, when it opens)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("asset_id", sa.String(32), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("killed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("delivery_share", sa.Float, nullable=False, server_default="1.0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "campaign_recipients",
        sa.Column("campaign", sa.String(64), sa.ForeignKey("campaigns.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("recipient", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("variant_id", sa.String(32), sa.ForeignKey("variants.id", ondelete="SET NULL"), nullable=True),
        sa.Column("machine", sa.String(128), nullable=True),
        sa.Column("render_s", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_campaign_recipients_status", "campaign_recipients", ["campaign", "status"])


def downgrade() -> None:
    op.drop_index("ix_campaign_recipients_status", "campaign_recipients")
    op.drop_table("campaign_recipients")
    op.drop_table("campaigns")
