"""Storage tests run against a real SQLite file and a real PostgreSQL server.

Every test using `database_url` runs twice: `sqlite` (a fresh file under tmp_path) and `postgres` (a fresh
database created on the server named by TEST_POSTGRES_URL, dropped afterwards; its user needs CREATEDB).
Without TEST_POSTGRES_URL, or with the server unreachable, the postgres variants skip, except under CI
(env CI set), where they fail: CI must exercise PostgreSQL (`.ci/postgres.sh` starts one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from migrated_databases import migrated_sqlite_url
from postgres_databases import fresh_postgres_database
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.storage import create_engine, make_session_factory


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def database_url(backend: str, tmp_path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database (no tables): for the tests of migrating itself."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'db' / 'moderator.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def migrated_url(backend: str, tmp_path) -> AsyncIterator[str]:
    """A fresh database at the newest migration, as the bot leaves it at start-up (a copy of a template migrated
    once per test process: tests/migrated_databases.py)."""
    if backend == "sqlite":
        yield await asyncio.to_thread(migrated_sqlite_url, tmp_path / "db" / "moderator.db")
        return
    async with fresh_postgres_database(migrated=True) as url:
        yield url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(engine)
