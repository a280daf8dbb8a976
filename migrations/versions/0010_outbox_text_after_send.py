"""Outbox messages may carry `text_after_send`: what their text becomes once sent or failed for good, so that a
one-time login link (`/web`) is not kept in the database after it went out.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("text_after_send", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("text_after_send")
