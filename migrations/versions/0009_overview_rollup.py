"""The operator web app at 1,000,000 verdicts (issue 17): what its pages counted by scanning, kept or copied.

- `verdict_day_counts`: verdicts per UTC day, task, chat and label, kept by `add_verdict` in the verdict's own
  transaction; filled here from the verdicts recorded before.
- `feedback.task`, `.chat_id`, `.message_id`, `.verdict_label`, `.verdict_created_at`: the verdict's, copied onto
  each label when it is recorded (a verdict's never change); filled here from the verdicts. Labels per day by kind
  and the review queue's labels of its window are then read without the verdicts (indexes on (task, created_at) and
  (task, verdict_created_at); the first replaces 0008's index on created_at alone).
- A partial index on verdicts that still have their text, (task, created_at, id, text_length): the review queue
  counts the unlabelled verdicts of its window from the index alone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _task_type() -> sa.Enum:
    return sa.Enum("sentiment", "toxicity", name="task", native_enum=False, create_constraint=True, length=16)


def _utc_day(column: str) -> str:
    """The UTC day of a timestamp column, as the models' Date type stores it on each backend."""
    if op.get_bind().dialect.name == "postgresql":
        return f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)"
    return f"date({column})"  # SQLite keeps UTC text; Date is 'YYYY-MM-DD'


def upgrade() -> None:
    op.create_table(
        "verdict_day_counts",
        sa.Column("task", _task_type(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("label_name", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task", "day", "chat_id", "label_name", name=op.f("pk_verdict_day_counts")),
    )
    day = _utc_day("created_at")
    op.execute(
        "INSERT INTO verdict_day_counts (task, day, chat_id, label_name, count) "
        f"SELECT task, {day}, chat_id, label_name, count(*) FROM verdicts GROUP BY task, {day}, chat_id, label_name"
    )

    with op.batch_alter_table("feedback") as batch_op:
        batch_op.add_column(sa.Column("task", _task_type(), nullable=True))
        batch_op.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("message_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("verdict_label", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("verdict_created_at", sa.DateTime(timezone=True), nullable=True))
    copies = {
        "task": "task",
        "chat_id": "chat_id",
        "message_id": "message_id",
        "verdict_label": "label",
        "verdict_created_at": "created_at",
    }
    # one UPDATE (a row value), so that each label row is rewritten once
    op.execute(
        f"UPDATE feedback SET ({', '.join(copies)}) = (SELECT {', '.join(copies.values())} FROM verdicts "
        "WHERE verdicts.id = feedback.verdict_id)"
    )
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.alter_column("task", existing_type=_task_type(), nullable=False)
        batch_op.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("message_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("verdict_label", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("verdict_created_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_index("ix_feedback_created_at")
        batch_op.create_index("ix_feedback_task_created_at", ["task", "created_at"], unique=False)
        batch_op.create_index(
            "ix_feedback_task_verdict_created_at", ["task", "verdict_created_at"], unique=False
        )

    op.create_index(
        "ix_verdicts_task_created_at_id_text_length",
        "verdicts",
        ["task", "created_at", "id", "text_length"],
        unique=False,
        postgresql_where=sa.text("text IS NOT NULL"),
        sqlite_where=sa.text("text IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_verdicts_task_created_at_id_text_length", table_name="verdicts")
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.drop_index("ix_feedback_task_verdict_created_at")
        batch_op.drop_index("ix_feedback_task_created_at")
        batch_op.create_index("ix_feedback_created_at", ["created_at"], unique=False)
        batch_op.drop_constraint(batch_op.f("ck_feedback_task"), type_="check")
        batch_op.drop_column("verdict_created_at")
        batch_op.drop_column("verdict_label")
        batch_op.drop_column("message_id")
        batch_op.drop_column("chat_id")
        batch_op.drop_column("task")
    op.drop_table("verdict_day_counts")
