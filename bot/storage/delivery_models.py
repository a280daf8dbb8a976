"""The Telegram inbox and outbox (owned by the delivery runner, bot/telegram/runner.py).

Every update Telegram delivers is stored here before it is confirmed (the next getUpdates offset, or the
webhook's 200), then processed from here; every reply to an update goes through the outbox, keyed by
(bot, update, sequence number), so that re-processing an update after a crash never sends a reply twice.

Several bot processes may share these tables (webhook mode behind a load balancer, PostgreSQL): a row's
`claimed_by` is the key of the process that handles it (bot/storage/process_claims.py), so that each update is
processed, and each message sent, by one process; a process that is gone leaves its rows to the others.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, UTCDateTime, portable_enum, utcnow


class InboxStatus(enum.StrEnum):
    PENDING = "pending"  # stored, not processed to the end yet (processed after a restart)
    DONE = "done"
    FAILED = "failed"  # a poison update: processing never finished after INBOX_MAX_ATTEMPTS tries


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # not sent yet (or the send failed and will be retried)
    SENT = "sent"
    FAILED = "failed"  # Telegram refused it for good (bad request, blocked bot) or retries ran out


class TelegramUpdate(Base):
    """One update as Telegram delivered it (the transactional inbox)."""

    __tablename__ = "telegram_updates"
    __table_args__ = (UniqueConstraint("bot_id", "update_id"), Index(None, "status", "update_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # update ids count per bot: a new token for another bot starts another sequence
    bot_id: Mapped[int] = mapped_column(BigInteger)
    update_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[InboxStatus] = mapped_column(
        portable_enum(InboxStatus, "inbox_status"), default=InboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # processing started this many times
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[int | None] = mapped_column(Integer)  # the process handling it (process_claims.py)

    def __repr__(self) -> str:
        return f"TelegramUpdate(update_id={self.update_id}, status={self.status}, attempts={self.attempts})"


class OutboxMessage(Base):
    """A message the bot sends (the outbox): stored before it is sent, marked once Telegram accepted it."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("bot_id", "update_id", "seq"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    # the update this message answers and its place among that update's replies; NULL: not tied to an update
    update_id: Mapped[int | None] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    reply_to_message_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    # what `text` becomes once sent or failed for good: a one-time login link is not kept after it went out
    text_after_send: Mapped[str | None] = mapped_column(Text)
    reply_markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    verdict_id: Mapped[int | None] = mapped_column(ForeignKey("verdicts.id", ondelete="SET NULL"))
    status: Mapped[OutboxStatus] = mapped_column(
        portable_enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # NULL: due now
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_message_id: Mapped[int | None] = mapped_column(BigInteger)
    claimed_by: Mapped[int | None] = mapped_column(Integer)  # the process sending it (process_claims.py)
    # a log chat's entry: those due together for one chat go out as one message (bot/telegram/delivery.py)
    digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __repr__(self) -> str:
        return (
            f"OutboxMessage(id={self.id}, update_id={self.update_id}, seq={self.seq}, status={self.status})"
        )
