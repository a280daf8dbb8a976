"""The learning loop and its bookkeeping: label source and trust, verdict margins, the review queue, run owners
and heartbeats, run seeds and gate records, model activation history, pruned model files.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _margin(probabilities: object) -> float | None:
    if isinstance(probabilities, str):
        probabilities = json.loads(probabilities)
    if not isinstance(probabilities, dict) or not probabilities:
        return None
    values = sorted((float(value) for value in probabilities.values()), reverse=True)
    return values[0] - (values[1] if len(values) > 1 else 0.0)


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.add_column(sa.Column("trusted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(
            sa.Column(
                "source",
                _enum("feedback_source", "button", "command", "review"),
                nullable=False,
                server_default="button",
            )
        )
    op.execute("UPDATE feedback SET trusted = is_admin")
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.alter_column("trusted", server_default=None)
        batch_op.alter_column("source", server_default=None)

    with op.batch_alter_table("verdicts") as batch_op:
        batch_op.add_column(sa.Column("margin", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_verdicts_margin"), ["margin"], unique=False)
    connection = op.get_bind()
    verdicts = sa.table(
        "verdicts",
        sa.column("id", sa.Integer),
        sa.column("probabilities", sa.JSON),
        sa.column("margin", sa.Float),
    )
    rows = connection.execute(sa.select(verdicts.c.id, verdicts.c.probabilities)).all()
    for verdict_id, probabilities in rows:
        connection.execute(
            verdicts.update().where(verdicts.c.id == verdict_id).values(margin=_margin(probabilities))
        )

    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("seed", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("gate", sa.JSON(), nullable=True))

    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "review_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.BigInteger(), nullable=False),
        sa.Column("verdict_id", sa.Integer(), nullable=False),
        sa.Column("outcome", _enum("review_outcome", "shown", "skipped", "labelled"), nullable=False),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["verdict_id"],
            ["verdicts.id"],
            name=op.f("fk_review_views_verdict_id_verdicts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_views")),
        sa.UniqueConstraint("reviewer_id", "verdict_id", name=op.f("uq_review_views_reviewer_id_verdict_id")),
    )
    op.create_index(
        op.f("ix_review_views_reviewer_id_shown_at"),
        "review_views",
        ["reviewer_id", "shown_at"],
        unique=False,
    )
    op.create_index(op.f("ix_review_views_verdict_id"), "review_views", ["verdict_id"], unique=False)

    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("previous_version_id", sa.Integer(), nullable=True),
        sa.Column(
            "reason",
            _enum("activation_reason", "import", "manual", "promotion", "rollback", "fallback"),
            nullable=False,
        ),
        sa.Column("actor", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_activations_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_activations_previous_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_activations")),
    )
    op.create_index(
        op.f("ix_model_activations_version_id"), "model_activations", ["version_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_model_activations_version_id"), table_name="model_activations")
    op.drop_table("model_activations")
    op.drop_index(op.f("ix_review_views_verdict_id"), table_name="review_views")
    op.drop_index(op.f("ix_review_views_reviewer_id_shown_at"), table_name="review_views")
    op.drop_table("review_views")
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.drop_column("pruned_at")
    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.drop_column("gate")
        batch_op.drop_column("seed")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")
    with op.batch_alter_table("verdicts") as batch_op:
        batch_op.drop_index(batch_op.f("ix_verdicts_margin"))
        batch_op.drop_column("margin")
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_feedback_feedback_source"), type_="check")
        batch_op.drop_column("source")
        batch_op.drop_column("trusted")
