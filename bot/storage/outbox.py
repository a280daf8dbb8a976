"""The outbox: messages the bot sends, stored before they are sent and marked once Telegram accepted them.

A reply to an update is keyed by (bot, update id, sequence number): when an update is processed again after a
crash, its reply is found here, and one already sent is not sent again. A reply whose send failed (retries
exhausted) or was cut by a shutdown stays pending and is sent later, once. Functions flush; the caller commits.

A message is sent by the process that holds it (`claimed_by`): the one whose handler stored it, or the one that
claimed it for a later try (`claim_outbox_message`, bot/storage/process_claims.py), so that bot processes
sharing the database never send one message twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.delivery_models import InboxStatus, OutboxMessage, OutboxStatus, TelegramUpdate
from bot.storage.errors import InvalidDataError
from bot.storage.models import utcnow
from bot.storage.process_claims import claim_row, claimable_by
from bot.storage.verdicts import set_reply_message_id

ERROR_TEXT_LIMIT = 1000


async def enqueue_message(
    session: AsyncSession,
    *,
    bot_id: int,
    chat_id: int,
    text: str,
    update_id: int | None = None,
    seq: int = 0,
    reply_to_message_id: int | None = None,
    reply_markup: dict[str, Any] | None = None,
    verdict_id: int | None = None,
    text_after_send: str | None = None,
    process_key: int | None = None,
    digest: bool = False,
) -> OutboxMessage:
    """Store a message to send (pending); returns the row. `text_after_send` replaces the text once the message is
        sent or failed for good (what must not stay in the database, such as a login link). `process_key`: the
        process that is about to send it (None: whichever flushes the outbox first). `digest`: an entry that may go out
    together with the chat's other due digest entries, as one message (a log chat's entries).

        With an `update_id`, idempotent on (bot, update, seq): when that reply exists already, whatever its status,
        the existing row is returned unchanged (re-processing an update must not queue a second reply).
    """
    if not isinstance(text, str) or not text:
        raise InvalidDataError("A message needs a non-empty text.")
    # PostgreSQL text cannot hold NUL; echoed user input may carry one.
    values = {
        "bot_id": bot_id,
        "update_id": update_id,
        "seq": seq,
        "chat_id": chat_id,
        "reply_to_message_id": reply_to_message_id,
        "text": text.replace("\x00", ""),
        "reply_markup": reply_markup,
        "verdict_id": verdict_id,
        "text_after_send": text_after_send,
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "created_at": utcnow(),
        "claimed_by": process_key,
        "digest": digest,
    }
    if update_id is None:
        row = OutboxMessage(**values)
        session.add(row)
        await session.flush()
        return row
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(OutboxMessage)
        .values(values)
        .on_conflict_do_nothing(index_elements=["bot_id", "update_id", "seq"])
    )
    row = await session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.bot_id == bot_id, OutboxMessage.update_id == update_id, OutboxMessage.seq == seq)
        .execution_options(populate_existing=True)
    )
    assert row is not None  # inserted above, or there before
    return row


async def get_outbox_message(session: AsyncSession, *, message_id: int) -> OutboxMessage | None:
    return await session.get(OutboxMessage, message_id, populate_existing=True)


async def due_outbox_messages(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    created_before: datetime | None = None,
    process_key: int | None = None,
    limit: int = 100,
) -> list[OutboxMessage]:
    """Pending messages whose next attempt is due, oldest first (with `process_key`: only those that process may
    claim).

    A message never tried yet counts only when created before `created_before` (default: `now`): a fresh one
    belongs to the handler that is sending it.
    """
    now = now or utcnow()
    created_before = created_before or now
    never_tried = OutboxMessage.next_attempt_at.is_(None) & (OutboxMessage.created_at <= created_before)
    statement = select(OutboxMessage).where(
        OutboxMessage.status == OutboxStatus.PENDING, never_tried | (OutboxMessage.next_attempt_at <= now)
    )
    if process_key is not None:
        statement = statement.where(claimable_by(session, OutboxMessage.claimed_by, process_key))
    return list((await session.scalars(statement.order_by(OutboxMessage.id).limit(limit))).all())


async def claim_outbox_message(session: AsyncSession, *, message_id: int, process_key: int) -> bool:
    """Make process `process_key` the one that sends a pending message: unclaimed, its own, or held by a process
    that is gone (one conditional UPDATE). False when it is not pending or another live process holds it."""
    return await claim_row(
        session, OutboxMessage, row_id=message_id, pending=OutboxStatus.PENDING, process_key=process_key
    )


async def mark_outbox_sent(session: AsyncSession, *, message_id: int, sent_message_id: int) -> None:
    """Telegram accepted the message: mark it sent and, when it announces a verdict, store the message's id on
    the verdict (replies to the bot's message then find the verdict) in the same transaction."""
    row = await session.get(OutboxMessage, message_id)
    if row is None:
        raise InvalidDataError(f"Outbox message {message_id} does not exist.")
    row.status = OutboxStatus.SENT
    _forget_sent_text(row)
    row.sent_at = utcnow()
    row.sent_message_id = sent_message_id
    row.attempts += 1
    row.last_error = None
    row.next_attempt_at = None
    if row.verdict_id is not None:
        await set_reply_message_id(session, verdict_id=row.verdict_id, reply_message_id=sent_message_id)
    await session.flush()


def _forget_sent_text(row: OutboxMessage) -> None:
    if row.text_after_send is not None:
        row.text, row.text_after_send = row.text_after_send, None


async def mark_outbox_failed_attempt(
    session: AsyncSession,
    *,
    message_id: int,
    error: str,
    retry_at: datetime | None,
) -> OutboxMessage:
    """A send failed: keep the message pending until `retry_at`, or mark it failed for good (`retry_at=None`)."""
    row = await session.get(OutboxMessage, message_id)
    if row is None:
        raise InvalidDataError(f"Outbox message {message_id} does not exist.")
    row.attempts += 1
    row.last_error = error[:ERROR_TEXT_LIMIT]
    if retry_at is None:
        row.status = OutboxStatus.FAILED
        _forget_sent_text(row)
        row.next_attempt_at = None
    else:
        row.next_attempt_at = retry_at
    await session.flush()
    return row


async def purge_outbox(session: AsyncSession, *, older_than: datetime) -> int:
    """Delete sent and failed messages created before `older_than`. Pending ones always stay, and so do the
    replies to updates still pending in the inbox (re-processing them must find their replies)."""
    still_pending = (
        select(TelegramUpdate.id)
        .where(
            TelegramUpdate.bot_id == OutboxMessage.bot_id,
            TelegramUpdate.update_id == OutboxMessage.update_id,
            TelegramUpdate.status == InboxStatus.PENDING,
        )
        .exists()
    )
    result = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.status != OutboxStatus.PENDING,
            OutboxMessage.created_at < older_than,
            ~still_pending,
        )
    )
    return int(result.rowcount or 0)
