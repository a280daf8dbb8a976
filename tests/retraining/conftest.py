"""Fixtures for the retraining tests: a real SQLite database (helpers live in retraining_helpers.py)."""

from __future__ import annotations

import asyncio

import pytest
from migrated_databases import migrated_sqlite_url

from bot.storage import create_engine, make_session_factory


@pytest.fixture
async def session_factory(tmp_path):
    url = await asyncio.to_thread(migrated_sqlite_url, tmp_path / "moderator.db")
    engine = create_engine(url)
    yield make_session_factory(engine)
    await engine.dispose()
