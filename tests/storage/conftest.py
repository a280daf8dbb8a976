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
from postgres_databases import fresh_postgres_database
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.storage import create_engine, make_session_factory, upgrade_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database (no tables)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'db' / 'moderator.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """A fresh database upgraded to the newest migration, the way the bot starts."""
    await asyncio.to_thread(upgrade_database, database_url)
    return database_url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(engine)
