"""Engines, sessions and schema upgrades.

SQLite gets WAL, enforced foreign keys, a busy timeout and `BEGIN IMMEDIATE` transactions: a writer takes
the write lock when its transaction starts, so concurrent writers wait for each other (up to the busy
timeout) instead of failing half-way with "database is locked". SAVEPOINTs then also work correctly. Within one
process the transactions share one connection (`SQLITE_FILE_POOL`); processes wait for each other in the busy
timeout.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.storage.errors import StorageError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# One connection per process for a SQLite file. Every transaction begins IMMEDIATE, so a process's transactions
# run one at a time whatever the pool holds; with several connections the waiters sleep in SQLite's busy handler
# and retry (back-off up to 100 ms), and a lock freed between two polls goes to whoever polls first, so some
# wait seconds; waiting for the one connection is an asyncio queue, served in order the moment it is free
# (bench/bench_sqlite_pool.py, docs/benchmarks.md).
SQLITE_FILE_POOL: dict[str, Any] = {
    "pool_size": 1,
    "max_overflow": 0,
    "pool_timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
}

# A URL without a driver gets the async driver this project installs.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def parse_database_url(url: str | URL) -> URL:
    """The URL with an async driver; a clear StorageError (without the password) when it cannot be parsed."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            "DATABASE_URL is not a valid database URL (e.g. sqlite+aiosqlite:///data/moderator.db)"
        )
    if parsed.drivername in _ASYNC_DRIVERS:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL as text with its password masked, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if (
        not database
        or database == ":memory:"
        or database.startswith("file:")
        or url.query.get("mode") == "memory"
    ):
        return None
    return Path(database)


def create_engine(url: str, *, enforce_foreign_keys: bool = True) -> AsyncEngine:
    """An AsyncEngine for `url` (SQLite or PostgreSQL); creates the parent folder of a SQLite file.

    `enforce_foreign_keys=False` is only for migrations: SQLite batch migrations rebuild tables, and
    dropping a parent table with foreign keys on would cascade-delete its children's rows.
    """
    parsed = parse_database_url(url)
    engine_options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        engine_options = {"hide_parameters": True}
        sqlite_file = _sqlite_file(parsed)
        if sqlite_file is not None:
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            engine_options.update(SQLITE_FILE_POOL)
    engine = create_async_engine(parsed, **engine_options)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, enforce_foreign_keys=enforce_foreign_keys)
    logger.debug("database engine for %s", safe_url(parsed))
    return engine


def _configure_sqlite(engine: AsyncEngine, *, enforce_foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control away from the driver; the "begin" hook below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across application crashes in WAL mode
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if enforce_foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (expire_on_commit=False)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):  # -> alembic.config.Config (imported lazily: alembic is only needed here)
    """An Alembic Config built in code, so migrations work from an installed package without alembic.ini."""
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # Passed as an attribute, not an ini option: ConfigParser would choke on '%' in encoded passwords.
    config.attributes["database_url"] = parse_database_url(url).render_as_string(hide_password=False)
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """`alembic upgrade head` for `url`. Synchronous: from async code call it via `asyncio.to_thread`."""
    _run_alembic(url, "upgrade", revision)


def downgrade_database(url: str, revision: str = "base") -> None:
    """`alembic downgrade <revision>` for `url` (for developers and tests)."""
    _run_alembic(url, "downgrade", revision)


def _run_alembic(url: str, command_name: str, revision: str) -> None:
    from alembic import command

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise StorageError(f"{command_name}_database blocks; call it via asyncio.to_thread from async code")
    config = alembic_config(url)  # raises a clear StorageError for a malformed URL
    logger.info("database %s to %s: %s", command_name, revision, safe_url(url))
    try:
        getattr(command, command_name)(config, revision)
    except (OSError, SQLAlchemyError) as error:
        # One line, no traceback: SQLAlchemy hides bound parameters (hide_parameters) and URLs mask passwords.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorageError(f"Database {command_name} failed for {safe_url(url)}: {reason}") from error


def engine_of(session_factory: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine a session factory made by `make_session_factory` is bound to."""
    engine = session_factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session factory is not bound to an AsyncEngine")
    return engine
