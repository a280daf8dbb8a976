"""One-time login links (`bot.storage.web_logins`) on SQLite and PostgreSQL: only the hash is stored, a link works
once and until it expires, and racing uses of one link log in exactly once."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.storage import (
    InvalidDataError,
    WebLogin,
    add_web_login,
    consume_web_login,
    purge_web_logins,
    usable_web_login,
)
from bot.storage.models import utcnow


async def test_a_link_is_stored_as_its_hash_and_works_once(session_factory):
    async with session_factory.begin() as session:
        await add_web_login(session, token="tok-1", user_id=42, valid_for=timedelta(minutes=10))
    async with session_factory() as session:
        row = await session.scalar(select(WebLogin))
        assert row.token_hash == hashlib.sha256(b"tok-1").hexdigest()
        assert await usable_web_login(session, token="tok-1") == 42
        assert await usable_web_login(session, token="tok-2") is None
    async with session_factory.begin() as session:
        assert await consume_web_login(session, token="tok-1") == 42
    async with session_factory.begin() as session:
        assert await consume_web_login(session, token="tok-1") is None
        assert await usable_web_login(session, token="tok-1") is None
        assert await consume_web_login(session, token="unknown") is None


async def test_an_expired_link_does_not_work_and_is_purged(session_factory):
    async with session_factory.begin() as session:
        await add_web_login(session, token="old", user_id=7, valid_for=timedelta(minutes=10))
    later = utcnow() + timedelta(minutes=11)
    async with session_factory.begin() as session:
        assert await usable_web_login(session, token="old", now=later) is None
        assert await consume_web_login(session, token="old", now=later) is None
        assert await purge_web_logins(session, expired_before=later) == 1
        assert await session.scalar(select(func.count()).select_from(WebLogin)) == 0
    with pytest.raises(InvalidDataError):
        async with session_factory.begin() as session:
            await add_web_login(session, token="", user_id=7, valid_for=timedelta(minutes=1))


async def test_racing_uses_of_one_link_log_in_once(session_factory):
    async with session_factory.begin() as session:
        await add_web_login(session, token="race", user_id=9, valid_for=timedelta(minutes=10))

    async def use() -> int | None:
        async with session_factory.begin() as session:
            return await consume_web_login(session, token="race")

    results = await asyncio.gather(*(use() for _ in range(5)))
    assert results.count(9) == 1 and results.count(None) == 4
