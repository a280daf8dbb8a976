"""The job queue's tables (procrastinate) on PostgreSQL: training runs become jobs that `moderator worker` takes
on any host. SQLite has no job queue (one process trains, as before), so this revision changes nothing there.

The schema is procrastinate's own `schema.sql` for the version pinned in pyproject.toml (3.10.x). Moving to a
newer procrastinate means a new revision that runs its migration files from `procrastinate/sql/migrations`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_script(sql: str) -> None:
    """Run a multi-statement script on the migration's own connection and transaction. The asyncpg driver
    prepares every statement SQLAlchemy sends, and a prepared statement holds one command; asyncpg's
    `execute` without arguments sends the script whole."""
    from sqlalchemy.util import await_only

    await_only(op.get_bind().connection.driver_connection.execute(sql))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    _run_script(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from bot.jobs.schema import DROP_SCHEMA

    _run_script(DROP_SCHEMA)
