"""jobs.host and jobs.pid: the process that runs a job, so that a later process on the same host can mark a
job whose process died (SIGKILL, power loss) failed instead of leaving it "running" for ever

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.create_index("ix_jobs_status_host", ["status", "host"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_host")
        batch.drop_column("pid")
        batch.drop_column("host")
