"""jobs.request_key: the client's idempotency key, unique per tenant, so a completed result is found again
after a retry or a gateway restart instead of being computed twice

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("request_key", sa.String(128), nullable=True))
        batch.create_unique_constraint("uq_jobs_tenant_request_key", ["tenant", "request_key"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_tenant_request_key", type_="unique")
        batch.drop_column("request_key")
