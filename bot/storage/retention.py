"""Retention: forget old review texts while keeping labels and statistics.

`RETENTION_DAYS` is applied by the running bot on a schedule (`purge_expired_texts`, a job of the bot's scheduler,
`bot.retraining.scheduler`) and by hand with `moderator db purge`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.errors import InvalidDataError
from bot.storage.models import Verdict, utcnow

logger = logging.getLogger(__name__)


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


async def purge_expired_texts(
    session_factory: async_sessionmaker[AsyncSession], *, older_than_days: int
) -> int:
    """The bot's scheduled retention job: `purge_old_texts` in its own transaction. Returns how many texts were
    purged; a failure (a locked database, say) is one warning line, and the next tick tries again."""
    try:
        async with session_factory() as session, session.begin():
            purged = await purge_old_texts(session, older_than_days=older_than_days)
    except Exception as error:  # noqa: BLE001 - tried again at the next tick
        logger.warning("retention: purging old review texts failed (%s: %s)", type(error).__name__, error)
        return 0
    if purged:
        logger.info("retention: purged the text of %d review(s) older than %d days", purged, older_than_days)
    return purged
