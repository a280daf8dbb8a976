"""Group moderation: each group's policy, members' reports, the decisions it took about toxic messages, and the Telegram actions
those decisions ask for (executed once, from their rows).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _mode() -> sa.Enum:
    return _enum("chat_mode", "off", "watch", "act")


def upgrade() -> None:
    op.create_table(
        "chat_policies",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("mode", _mode(), nullable=False),
        sa.Column("toxicity_threshold", sa.Float(), nullable=False),
        sa.Column("action", _enum("toxic_action", "delete", "warn"), nullable=False),
        sa.Column("mute_after_strikes", sa.Integer(), nullable=False),
        sa.Column("mute_minutes", sa.Integer(), nullable=False),
        sa.Column("ban_after_strikes", sa.Integer(), nullable=False),
        sa.Column("strike_window_hours", sa.Integer(), nullable=False),
        sa.Column("post_sentiment", sa.Boolean(), nullable=False),
        sa.Column("reports_to_act", sa.Integer(), nullable=False),
        sa.Column("log_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_by", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chat_policies")),
    )
    op.create_table(
        "moderation_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("verdict_id", sa.Integer(), nullable=True),
        sa.Column("mode", _mode(), nullable=False),
        sa.Column("toxic_probability", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("strike", sa.Boolean(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("warn", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admin_decision", sa.String(length=16), nullable=True),
        sa.Column("admin_id", sa.BigInteger(), nullable=True),
        sa.Column("admin_decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["verdict_id"],
            ["verdicts.id"],
            name=op.f("fk_moderation_decisions_verdict_id_verdicts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_decisions")),
        sa.UniqueConstraint("chat_id", "message_id", name=op.f("uq_moderation_decisions_chat_id_message_id")),
    )
    op.create_index(
        op.f("ix_moderation_decisions_chat_id_user_id_decided_at"),
        "moderation_decisions",
        ["chat_id", "user_id", "decided_at"],
        unique=False,
    )
    op.create_table(
        "moderation_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("action_kind", "delete", "mute", "ban", "unmute", "unban"), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", _enum("action_status", "pending", "done", "failed"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["moderation_decisions.id"],
            name=op.f("fk_moderation_actions_decision_id_moderation_decisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_actions")),
        sa.UniqueConstraint("decision_id", "kind", name=op.f("uq_moderation_actions_decision_id_kind")),
    )
    op.create_index(
        op.f("ix_moderation_actions_status_id"), "moderation_actions", ["status", "id"], unique=False
    )

    op.create_table(
        "message_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("reporter_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_reports")),
        sa.UniqueConstraint(
            "chat_id",
            "message_id",
            "reporter_id",
            name=op.f("uq_message_reports_chat_id_message_id_reporter_id"),
        ),
    )
    op.create_index(
        op.f("ix_message_reports_reporter_id_created_at"),
        "message_reports",
        ["reporter_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_message_reports_reporter_id_created_at"), table_name="message_reports")
    op.drop_table("message_reports")
    op.drop_index(op.f("ix_moderation_actions_status_id"), table_name="moderation_actions")
    op.drop_table("moderation_actions")
    op.drop_index(
        op.f("ix_moderation_decisions_chat_id_user_id_decided_at"), table_name="moderation_decisions"
    )
    op.drop_table("moderation_decisions")
    op.drop_table("chat_policies")
