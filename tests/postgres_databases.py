"""PostgreSQL for tests: a fresh database per test on the server TEST_POSTGRES_URL names (`.ci/postgres.sh`
starts one). Without TEST_POSTGRES_URL, or with the server unreachable, PostgreSQL tests skip, except under CI
(env CI set), where they fail: CI must exercise PostgreSQL."""

from __future__ import annotations

import asyncio
import atexit
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.storage import safe_url, upgrade_database

POSTGRES_URL_ENV = "TEST_POSTGRES_URL"

_postgres_problem: dict[str, str | None] = {}
_migrated_templates: list[str] = []


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


async def _check_postgres_server(server_url: str) -> str | None:
    """None when the server answers, else why not (without the password)."""
    engine = create_async_engine(make_url(server_url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None
    except (OSError, TimeoutError, SQLAlchemyError) as error:  # refused, timed out, or rejected by the server
        return f"PostgreSQL at {safe_url(server_url)} is unreachable ({type(error).__name__})"
    finally:
        await engine.dispose()


async def _postgres_admin_engine() -> AsyncEngine:
    server_url = os.environ.get(POSTGRES_URL_ENV)
    if not server_url:
        _postgres_unavailable(
            f"{POSTGRES_URL_ENV} is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)"
        )
    if server_url not in _postgres_problem:
        _postgres_problem[server_url] = await _check_postgres_server(server_url)
    if _postgres_problem[server_url]:
        _postgres_unavailable(_postgres_problem[server_url])
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return create_async_engine(make_url(server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")


def _database_url(database_name: str) -> str:
    server_url = make_url(os.environ[POSTGRES_URL_ENV])
    return server_url.set(database=database_name).render_as_string(hide_password=False)


async def _drop_database(admin_engine: AsyncEngine, database_name: str) -> None:
    async with admin_engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)'))


async def _drop_template(database_name: str) -> None:
    admin_engine = await _postgres_admin_engine()
    try:
        await _drop_database(admin_engine, database_name)
    finally:
        await admin_engine.dispose()


async def _migrated_template(admin_engine: AsyncEngine) -> str:
    """This process's template database at the newest migration (created once, dropped at exit): copies of it
    are what `upgrade_database` would leave in a new database (see tests/migrated_databases.py)."""
    if not _migrated_templates:
        name = f"moderator_template_{uuid.uuid4().hex[:16]}"
        async with admin_engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        atexit.register(lambda: asyncio.run(_drop_template(name)))
        # Its engine is disposed afterwards: a template may have no connection while it is copied.
        await asyncio.to_thread(upgrade_database, _database_url(name))
        _migrated_templates.append(name)
    return _migrated_templates[0]


@asynccontextmanager
async def fresh_postgres_database(*, migrated: bool = False) -> AsyncIterator[str]:
    """The URL of a new database, dropped afterwards (its user needs CREATEDB): empty, or with `migrated` at the
    newest migration (a copy of this process's migrated template)."""
    admin_engine = await _postgres_admin_engine()
    database_name = f"moderator_test_{uuid.uuid4().hex[:16]}"
    try:
        template = f' TEMPLATE "{await _migrated_template(admin_engine)}"' if migrated else ""
        async with admin_engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{database_name}"{template}'))
        yield _database_url(database_name)
        await _drop_database(admin_engine, database_name)
    finally:
        await admin_engine.dispose()
