"""The Telegram inbox: updates are stored before Telegram is told they arrived, and processed from here.

A poller stores each getUpdates batch in one transaction and only then confirms it (the next getUpdates
offset); a webhook answers 200 only after the commit. Processing marks each row done. After a crash the
rows still pending are processed again, so nothing Telegram considers delivered is lost. Functions flush;
the caller commits.

Each row is held by the process that stored it (`claimed_by`, its process key): only that process starts
processing it, and the rows of a process that is gone are taken over by one other (`adopt_updates`,
bot/storage/process_claims.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.delivery_models import InboxStatus, TelegramUpdate
from bot.storage.errors import InvalidDataError
from bot.storage.models import utcnow
from bot.storage.process_claims import claimable_by

ERROR_TEXT_LIMIT = 1000  # characters of an error kept on a failed row


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql_insert(TelegramUpdate)
    if dialect == "sqlite":
        return sqlite_insert(TelegramUpdate)
    raise InvalidDataError(f"The inbox supports SQLite and PostgreSQL, not {dialect}.")


async def store_updates(
    session: AsyncSession, *, bot_id: int, updates: Sequence[dict[str, Any]], process_key: int
) -> list[int]:
    """Store updates (each a Bot API `Update` object as a dict), held by process `process_key`; returns the ids
    of those new to the inbox.

    Idempotent: an update stored before (Telegram re-delivers what was not confirmed) is skipped, whatever
    its status.
    """
    rows = []
    for payload in updates:
        update_id = payload.get("update_id") if isinstance(payload, dict) else None
        if isinstance(update_id, bool) or not isinstance(update_id, int):
            raise InvalidDataError(f"An update needs an integer update_id, got {update_id!r}.")
        rows.append(
            {
                "bot_id": bot_id,
                "update_id": update_id,
                "payload": payload,
                "status": InboxStatus.PENDING,
                "attempts": 0,
                "received_at": utcnow(),
                "claimed_by": process_key,
            }
        )
    if not rows:
        return []
    statement = (
        _insert(session)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["bot_id", "update_id"])
        .returning(TelegramUpdate.update_id)
    )
    inserted = set((await session.scalars(statement)).all())
    return [row["update_id"] for row in rows if row["update_id"] in inserted]


async def pending_updates(
    session: AsyncSession,
    *,
    bot_id: int,
    update_ids: Sequence[int] | None = None,
    limit: int | None = None,
) -> list[TelegramUpdate]:
    """Updates stored but not processed to the end (those among `update_ids`, when given), oldest first."""
    statement = (
        select(TelegramUpdate)
        .where(TelegramUpdate.bot_id == bot_id, TelegramUpdate.status == InboxStatus.PENDING)
        .order_by(TelegramUpdate.update_id)
    )
    if update_ids is not None:
        statement = statement.where(TelegramUpdate.update_id.in_(list(update_ids)))
    if limit is not None:
        statement = statement.limit(limit)
    return list((await session.scalars(statement)).all())


async def start_updates(
    session: AsyncSession, *, bot_id: int, update_ids: Sequence[int], process_key: int
) -> dict[int, int]:
    """Count one more processing attempt of each pending update among `update_ids` that process `process_key`
    holds (one statement); returns {update id: attempts so far} for those, leaving out the ones not pending
    (done, failed or unknown) or held by another process."""
    if not update_ids:
        return {}
    rows = await session.execute(
        update(TelegramUpdate)
        .where(
            TelegramUpdate.bot_id == bot_id,
            TelegramUpdate.update_id.in_(list(update_ids)),
            TelegramUpdate.status == InboxStatus.PENDING,
            TelegramUpdate.claimed_by == process_key,
        )
        .values(attempts=TelegramUpdate.attempts + 1)
        .returning(TelegramUpdate.update_id, TelegramUpdate.attempts)
        .execution_options(synchronize_session=False)
    )
    return {int(update_id): int(attempts) for update_id, attempts in rows}


async def adopt_updates(session: AsyncSession, *, bot_id: int, process_key: int) -> list[int]:
    """Take over, for process `process_key`, the pending updates that nobody holds or whose process is gone (one
    conditional UPDATE: of two processes adopting at once, each row goes to one). Returns their ids, oldest
    first; the updates this process held already are not among them."""
    ids = (
        await session.scalars(
            update(TelegramUpdate)
            .where(
                TelegramUpdate.bot_id == bot_id,
                TelegramUpdate.status == InboxStatus.PENDING,
                TelegramUpdate.claimed_by.is_distinct_from(process_key),
                claimable_by(session, TelegramUpdate.claimed_by, process_key),
            )
            .values(claimed_by=process_key)
            .returning(TelegramUpdate.update_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    return sorted(int(update_id) for update_id in ids)


async def finish_updates(
    session: AsyncSession,
    *,
    bot_id: int,
    update_ids: Sequence[int],
    status: InboxStatus = InboxStatus.DONE,
    error: str | None = None,
) -> None:
    """Mark updates done (or failed, with the reason), in one statement."""
    if not update_ids:
        return
    await session.execute(
        update(TelegramUpdate)
        .where(TelegramUpdate.bot_id == bot_id, TelegramUpdate.update_id.in_(list(update_ids)))
        .values(
            status=InboxStatus(status),
            processed_at=utcnow(),
            error=None if error is None else error[:ERROR_TEXT_LIMIT],
        )
        .execution_options(synchronize_session=False)
    )


async def fail_poison_updates(
    session: AsyncSession, *, bot_id: int, update_ids: Sequence[int], max_attempts: int
) -> list[int]:
    """Mark failed the pending updates among `update_ids` whose processing already started `max_attempts` times
    without ever finishing (each start was followed by a crash or a kill): processing them again would loop
    forever. Returns their ids."""
    if not update_ids:
        return []
    ids = list(
        (
            await session.scalars(
                update(TelegramUpdate)
                .where(
                    TelegramUpdate.bot_id == bot_id,
                    TelegramUpdate.update_id.in_(list(update_ids)),
                    TelegramUpdate.status == InboxStatus.PENDING,
                    TelegramUpdate.attempts >= max_attempts,
                )
                .values(
                    status=InboxStatus.FAILED,
                    processed_at=utcnow(),
                    error=f"processing never finished in {max_attempts} attempts",
                )
                .returning(TelegramUpdate.update_id)
            )
        ).all()
    )
    return sorted(ids)


async def purge_inbox(session: AsyncSession, *, older_than: datetime) -> int:
    """Delete processed (done or failed) updates processed before `older_than`; pending ones always stay."""
    result = await session.execute(
        delete(TelegramUpdate).where(
            TelegramUpdate.status != InboxStatus.PENDING, TelegramUpdate.processed_at < older_than
        )
    )
    return int(result.rowcount or 0)
