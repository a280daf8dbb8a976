"""Core tables: model versions, training runs, verdicts, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("base_checkpoint", sa.String(length=1024), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column(
            "status", _enum("model_status", "candidate", "active", "rejected", "retired"), nullable=False
        ),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(status = 'active' AND active_slot IS NOT NULL AND active_slot = 1) OR (status <> 'active' AND active_slot IS NULL)",
            name=op.f("ck_model_versions_active_slot_matches_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("active_slot", name=op.f("uq_model_versions_active_slot")),
    )
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trigger", _enum("run_trigger", "schedule", "admin", "cli"), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "status",
            _enum("run_status", "queued", "running", "succeeded", "failed", "rejected"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("example_count", sa.Integer(), nullable=True),
        sa.Column("correction_count", sa.Integer(), nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log_path", sa.String(length=1024), nullable=True),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(status IN ('queued', 'running') AND active_slot IS NOT NULL AND active_slot = 1)"
            " OR (status NOT IN ('queued', 'running') AND active_slot IS NULL)",
            name=op.f("ck_training_runs_active_slot_matches_status"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_training_runs_model_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
        sa.UniqueConstraint("active_slot", name=op.f("uq_training_runs_active_slot")),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("text_length", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("label_name", sa.String(length=64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("reply_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_verdicts_model_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
        sa.UniqueConstraint("chat_id", "message_id", name=op.f("uq_verdicts_chat_id_message_id")),
    )
    op.create_index(op.f("ix_verdicts_chat_id_reply_message_id"), "verdicts", ["chat_id", "reply_message_id"])
    op.create_index(op.f("ix_verdicts_chat_id_user_id"), "verdicts", ["chat_id", "user_id"])
    op.create_index(op.f("ix_verdicts_created_at"), "verdicts", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("verdict_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_by_run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["used_by_run_id"],
            ["training_runs.id"],
            name=op.f("fk_feedback_used_by_run_id_training_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["verdict_id"], ["verdicts.id"], name=op.f("fk_feedback_verdict_id_verdicts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("verdict_id", "user_id", name=op.f("uq_feedback_verdict_id_user_id")),
    )
    op.create_index(op.f("ix_feedback_used_by_run_id"), "feedback", ["used_by_run_id"])
    op.create_index(op.f("ix_feedback_user_id_updated_at"), "feedback", ["user_id", "updated_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("verdicts")
    op.drop_table("training_runs")
    op.drop_table("model_versions")
