"""Fixtures for the retraining tests: a real SQLite database (helpers live in retraining_helpers.py)."""

from __future__ import annotations

import asyncio

import pytest

from bot.storage import create_engine, make_session_factory, upgrade_database


@pytest.fixture
async def session_factory(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'moderator.db'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(url)
    yield make_session_factory(engine)
    await engine.dispose()
