"""Tasks are first-class: model versions, verdicts and training runs each belong to a task (sentiment or
toxicity). Every existing row becomes sentiment, the only task there was. One version is active per task; a
message gets one verdict per task. Labels and review items follow their verdict's task.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("model_versions", "verdicts", "training_runs")


def _task_column() -> sa.Column:
    task = sa.Enum("sentiment", "toxicity", name="task", native_enum=False, create_constraint=True, length=16)
    # The server default fills the existing rows, then goes: the application always names the task.
    return sa.Column("task", task, nullable=False, server_default="sentiment")


# The UNIQUE constraints that gain the task column: their columns before and after (one active version per task,
# one verdict per message and task).
TASK_SCOPED_UNIQUES = {
    "model_versions": (["active_slot"], ["task", "active_slot"]),
    "verdicts": (["chat_id", "message_id"], ["chat_id", "message_id", "task"]),
}


def _replace_unique(table: str, old: list[str], new: list[str]) -> None:
    """Swap one UNIQUE constraint for another, named by the models' naming convention (uq_<table>_<columns>)."""
    with op.batch_alter_table(table) as batch_op:
        batch_op.drop_constraint(f"uq_{table}_{'_'.join(old)}", type_="unique")
        batch_op.create_unique_constraint(batch_op.f(f"uq_{table}_{'_'.join(new)}"), new)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(_task_column())
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("task", server_default=None)
    for table, (before, after) in TASK_SCOPED_UNIQUES.items():
        _replace_unique(table, before, after)


def downgrade() -> None:
    # Revision 0004 knows one task only: what belongs to toxicity cannot be kept.
    toxicity_verdicts = "SELECT id FROM verdicts WHERE task <> 'sentiment'"
    op.execute(f"DELETE FROM feedback WHERE verdict_id IN ({toxicity_verdicts})")
    op.execute(f"DELETE FROM review_views WHERE verdict_id IN ({toxicity_verdicts})")
    op.execute(f"UPDATE outbox_messages SET verdict_id = NULL WHERE verdict_id IN ({toxicity_verdicts})")
    op.execute("DELETE FROM verdicts WHERE task <> 'sentiment'")
    op.execute("DELETE FROM training_runs WHERE task <> 'sentiment'")
    toxicity_versions = "SELECT id FROM model_versions WHERE task <> 'sentiment'"
    op.execute(f"DELETE FROM model_activations WHERE version_id IN ({toxicity_versions})")
    op.execute(
        f"UPDATE model_activations SET previous_version_id = NULL WHERE previous_version_id IN ({toxicity_versions})"
    )
    op.execute(f"UPDATE verdicts SET model_version_id = NULL WHERE model_version_id IN ({toxicity_versions})")
    op.execute(
        f"UPDATE training_runs SET model_version_id = NULL WHERE model_version_id IN ({toxicity_versions})"
    )
    op.execute("DELETE FROM model_versions WHERE task <> 'sentiment'")
    for table, (before, after) in TASK_SCOPED_UNIQUES.items():
        _replace_unique(table, after, before)
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"ck_{table}_task"), type_="check")
            batch_op.drop_column("task")
