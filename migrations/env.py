"""Alembic environment: async-URL aware, reads `bot.storage.models.Base.metadata`.

The URL comes from `config.attributes["database_url"]` (set by `bot.storage.upgrade_database`), else the
`sqlalchemy.url` ini option (alembic.ini for developers), else the settings' DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import logging
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.jobs.schema import include_object
from bot.storage.database import create_engine, parse_database_url
from bot.storage.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata
logger = logging.getLogger("alembic.env")
if config.config_file_name:  # the `alembic` command line with alembic.ini; the bot keeps its own logging
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from bot.settings import get_settings

        url = get_settings().database_url
    return parse_database_url(url).render_as_string(hide_password=False)


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Migrations stay free of project imports: UTCDateTime is a plain timezone-aware DateTime in the schema.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**options: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds the table instead
        compare_type=True,
        render_item=_render_item,
        include_object=include_object,  # procrastinate's tables are its own (migration 0011)
        **options,
    )


def run_migrations_offline() -> None:
    _configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


# Several processes may start at once (bots, a training worker) and each upgrades the database: on PostgreSQL
# they take turns on this advisory lock, so the later ones find it at head. SQLite's `BEGIN IMMEDIATE` serialises.
MIGRATION_LOCK_KEY = 7_042_025_111


def _run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        # Foreign keys are off while migrating (see create_engine); make sure nothing dangles afterwards.
        problems = connection.execute(text("PRAGMA foreign_key_check")).all()
        if problems:
            raise RuntimeError(f"foreign key violations after migrating: {problems[:5]}")


async def run_migrations_online() -> None:
    engine = create_engine(_database_url(), enforce_foreign_keys=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
