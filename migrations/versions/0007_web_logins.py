"""The operator web app's one-time login links (`/web`): the SHA-256 hash of each token, whose it is, until when it
works, and when it was used (it works once).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_logins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_logins")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_logins_token_hash")),
    )
    op.create_index(op.f("ix_web_logins_expires_at"), "web_logins", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_logins_expires_at"), table_name="web_logins")
    op.drop_table("web_logins")
