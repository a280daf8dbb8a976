"""Indexes for the operator web app's overview and chat pages: verdicts per day and label over a window (all chats
or one), labels per day, a chat's action log newest first, decisions by verdict, and actions per group per window.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-13
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_verdicts_task_created_at_label_name", "verdicts", ["task", "created_at", "label_name"]),
    ("ix_verdicts_chat_id_task_created_at", "verdicts", ["chat_id", "task", "created_at"]),
    ("ix_feedback_created_at", "feedback", ["created_at"]),
    ("ix_moderation_decisions_chat_id_id", "moderation_decisions", ["chat_id", "id"]),
    ("ix_moderation_decisions_verdict_id", "moderation_decisions", ["verdict_id"]),
    ("ix_moderation_actions_created_at_chat_id", "moderation_actions", ["created_at", "chat_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
