"""One-time login links of the operator web app (`/web`, bot/web/auth.py).

Only the SHA-256 hash of a token is stored, so the database alone cannot log anyone in. A link works once and
until it expires: `consume_web_login` marks it used with one conditional UPDATE and reads the row count, so two
requests racing with the same link cannot both succeed, on SQLite or PostgreSQL. Functions flush; the caller
commits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.models import WebLogin, utcnow


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def add_web_login(session: AsyncSession, *, token: str, user_id: int, valid_for: timedelta) -> WebLogin:
    """Remember a new link's token (hashed) for `user_id`, valid for `valid_for` from now."""
    if not token or valid_for <= timedelta(0):
        raise InvalidDataError("A login link needs a token and a positive validity.")
    now = utcnow()
    login = WebLogin(
        token_hash=token_hash(token), user_id=user_id, created_at=now, expires_at=now + valid_for
    )
    session.add(login)
    await session.flush()
    return login


async def usable_web_login(session: AsyncSession, *, token: str, now: datetime | None = None) -> int | None:
    """The user id of a link that would work now (unused, not expired), without using it; else None."""
    return await session.scalar(
        select(WebLogin.user_id).where(
            WebLogin.token_hash == token_hash(token),
            WebLogin.used_at.is_(None),
            WebLogin.expires_at > (now or utcnow()),
        )
    )


async def consume_web_login(session: AsyncSession, *, token: str, now: datetime | None = None) -> int | None:
    """Use a link: the user id it logs in, or None when it is unknown, expired or already used.

    One conditional UPDATE: of two requests with the same link, exactly one changes the row."""
    now = now or utcnow()
    hashed = token_hash(token)
    result = await session.execute(
        update(WebLogin)
        .where(WebLogin.token_hash == hashed, WebLogin.used_at.is_(None), WebLogin.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return await session.scalar(select(WebLogin.user_id).where(WebLogin.token_hash == hashed))


async def purge_web_logins(session: AsyncSession, *, expired_before: datetime) -> int:
    """Delete links that expired before `expired_before` (used or not); returns how many."""
    result = await session.execute(
        delete(WebLogin)
        .where(WebLogin.expires_at < expired_before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
