"""Retention: forget old review texts while keeping labels and statistics."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.models import Verdict, utcnow


async def purge_old_texts(session: AsyncSession, *, older_than_days: int, now: datetime | None = None) -> int:
    """Null the text of verdicts created more than `older_than_days` days before `now`; returns how many.

    Labels, confidences and corrections stay, so statistics are unchanged; purged verdicts no longer
    feed retraining (there is no text to train on). The caller commits.
    """
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) or older_than_days < 0:
        raise InvalidDataError(f"Retention must be a whole number of days >= 0, got {older_than_days!r}.")
    now = now or utcnow()
    cutoff = now - timedelta(days=older_than_days)
    result = await session.execute(
        update(Verdict)
        .where(Verdict.created_at < cutoff, Verdict.text.is_not(None))
        .values(text=None, text_purged_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)
