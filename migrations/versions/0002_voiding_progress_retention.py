"""Feedback voiding, training run progress, text retention.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.add_column(sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("voided_by", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.add_column(sa.Column("progress", sa.String(length=255), nullable=True))
    with op.batch_alter_table("verdicts") as batch_op:
        batch_op.add_column(sa.Column("text_purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("verdicts") as batch_op:
        batch_op.drop_column("text_purged_at")
    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.drop_column("progress")
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.drop_column("voided_by")
        batch_op.drop_column("voided_at")
