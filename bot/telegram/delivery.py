"""Sending through the outbox: a message is stored, then sent, then marked sent; nothing is sent twice.

The runner (bot.telegram.runner) processes each update inside an `UpdateScope` (a context variable): the
replies made while handling update U are keyed (U, 0), (U, 1), ... When U is processed again after a crash,
its replies are found by that key: one already sent is not sent again, one still pending is sent now.

A send that fails after the rate limiter's retries (Telegram down, a network outage) or that a shutdown cuts
off stays pending; `Outbox.flush` sends it later (periodically, and after a restart), with a growing pause
between tries and a bounded number of them. Telegram refusing a message for good (400 Bad Request, 403 the
user blocked the bot) marks it failed at once.

Marking a message sent is a database commit, and under a burst SQLite's one write lock can keep it waiting
for a second. So the moment Telegram accepts a message it is also appended to a small journal file next to
the database (one write system call, nothing to wait for); the next start marks the journal's messages sent
before anything else. The window left is between Telegram accepting a message and the bot reading that
answer: a process killed exactly then sends the message again after its restart (at-least-once; Telegram has
no idempotency key for sendMessage). docs/reliability.md measures it.

A chat's due log entries (rows marked `digest`) go out together, a digest at a time (bot/telegram/digest.py):
one send, every entry in it marked sent with that message's id, each journalled like a single message.

Bot processes sharing one PostgreSQL database send only the messages they hold: a handler's replies are stored
held by its process; a message another process holds is claimed (storage.claim_outbox_message) only once that
process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from telegram import Chat, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ChatType
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError

from bot import storage
from bot.storage import OutboxMessage, OutboxStatus
from bot.storage.models import utcnow
from bot.telegram.digest import Entry, digests
from bot.telegram.limits import MESSAGE_TEXT_LIMIT, clip

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from telegram import Bot

    from bot.storage.process_claims import ProcessLock

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 600.0
MARK_SENT_ATTEMPTS = 5  # commits of "sent" tried before giving up (the send itself is never repeated)
FLUSH_GRACE_SECONDS = 2.0  # a fresh message belongs to the handler sending it; the flusher takes older ones


@dataclass
class UpdateScope:
    """The update being processed, and how many replies to it were made so far."""

    outbox: Outbox
    update_id: int
    replies: int = 0

    def next_seq(self) -> int:
        seq = self.replies
        self.replies += 1
        return seq


_scope: ContextVar[UpdateScope | None] = ContextVar("update_scope", default=None)


@contextlib.contextmanager
def update_scope(outbox: Outbox, update_id: int) -> Iterator[UpdateScope]:
    scope = UpdateScope(outbox, update_id)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def current_outbox() -> Outbox | None:
    """The outbox of the update being processed by the runner (None outside it)."""
    scope = _scope.get()
    return scope.outbox if scope is not None else None


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS))


class SentJournal:
    """Append-only "outbox id, Telegram message id" lines, written the moment Telegram accepts a message.

    One `write` of a short line to a file opened with O_APPEND: it survives the process being killed (the
    kernel has it), costs microseconds, and never waits for a lock. `recover` moves the lines into the
    database; `truncate` empties the file once everything in it is committed there.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)

    def record(self, outbox_id: int, sent_message_id: int) -> None:
        os.write(self._fd, f"{outbox_id} {sent_message_id}\n".encode())

    def entries(self) -> dict[int, int]:
        entries: dict[int, int] = {}
        for line in self.path.read_text(encoding="ascii", errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and all(part.isascii() and part.isdigit() for part in parts):
                entries[int(parts[0])] = int(parts[1])  # a torn last line is ignored
        return entries

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def truncate(self) -> None:
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


@dataclass
class Outbox:
    bot: Bot
    session_factory: async_sessionmaker[AsyncSession]
    max_attempts: int = 20
    journal: SentJournal | None = None
    process_lock: ProcessLock | None = None  # None: the only process (tests that build an Outbox alone)
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    _sent_unrecorded: dict[int, int] = field(default_factory=dict)  # outbox id -> Telegram message id

    async def send(
        self,
        *,
        chat_id: int,
        text: str,
        reply_to_message_id: int | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
        verdict_id: int | None = None,
        scoped: bool = True,
        text_after_send: str | None = None,
    ) -> Message | None:
        """Store the message (keyed by the current update, when `scoped`), then send it.

        Returns the sent message, or None when it could not be sent now (it stays pending and is retried)
        or Telegram refused it for good.
        """
        scope = _scope.get() if scoped else None
        async with self.session_factory.begin() as session:
            row = await storage.enqueue_message(
                session,
                bot_id=self.bot.id,
                update_id=scope.update_id if scope else None,
                seq=scope.next_seq() if scope else 0,
                chat_id=chat_id,
                reply_to_message_id=reply_to_message_id,
                text=clip(text, MESSAGE_TEXT_LIMIT),
                reply_markup=reply_markup.to_dict() if reply_markup is not None else None,
                verdict_id=verdict_id,
                text_after_send=text_after_send,
                process_key=self._process_key,
            )
        return await self.deliver(row.id)

    @property
    def _process_key(self) -> int | None:
        return self.process_lock.key if self.process_lock is not None else None

    async def deliver(self, outbox_id: int) -> Message | None:
        """Send a stored message unless it was sent already (then the sent message is returned again)."""
        lock = self._locks.setdefault(outbox_id, asyncio.Lock())
        try:
            async with lock:
                return await self._deliver(outbox_id)
        finally:
            if not lock.locked() and self._locks.get(outbox_id) is lock:
                del self._locks[outbox_id]

    async def _deliver(self, outbox_id: int) -> Message | None:
        async with self.session_factory.begin() as session:
            row = await storage.get_outbox_message(session, message_id=outbox_id)
        if row is None or row.status == OutboxStatus.FAILED:
            return None
        if row.status == OutboxStatus.SENT:
            return self._stub(row, row.sent_message_id)
        if outbox_id in self._sent_unrecorded:  # sent by this process; only the bookkeeping failed
            return await self._mark_sent(row, self._sent_unrecorded[outbox_id])
        key = self._process_key
        if key is not None and row.claimed_by != key:  # another process's, or nobody's: claim it first
            async with self.session_factory.begin() as session:
                if not await storage.claim_outbox_message(session, message_id=outbox_id, process_key=key):
                    return None  # sent, or being sent, by a live process sharing the database
        try:
            message = await self.bot.send_message(
                chat_id=row.chat_id,
                text=row.text,
                reply_parameters=(
                    ReplyParameters(row.reply_to_message_id, allow_sending_without_reply=True)
                    if row.reply_to_message_id is not None
                    else None
                ),
                reply_markup=(
                    InlineKeyboardMarkup.de_json(row.reply_markup, self.bot) if row.reply_markup else None
                ),
            )
        except (BadRequest, Forbidden, ChatMigrated) as error:
            await self._failed(row, error, permanent=True)
            return None
        except TelegramError as error:  # retries exhausted: 5xx, timeouts, network, 429, token trouble
            await self._failed(row, error, permanent=False)
            return None
        # Before anything can wait: a process killed from here on does not send this message again.
        self._sent_unrecorded[outbox_id] = message.message_id
        if self.journal is not None:
            self.journal.record(outbox_id, message.message_id)
        await self._mark_sent(row, message.message_id)
        return message

    async def _mark_sent(self, row: OutboxMessage, sent_message_id: int) -> Message:
        for attempt in range(1, MARK_SENT_ATTEMPTS + 1):
            try:
                async with self.session_factory.begin() as session:
                    await storage.mark_outbox_sent(
                        session, message_id=row.id, sent_message_id=sent_message_id
                    )
            except Exception as error:  # noqa: BLE001 - the database is down; never send again meanwhile
                if attempt == MARK_SENT_ATTEMPTS:
                    logger.error(
                        "message %s was sent but could not be marked sent (%s); this process will not send "
                        "it again",
                        row.id,
                        type(error).__name__,
                    )
                    break
                await asyncio.sleep(0.2 * attempt)
            else:
                self._sent_unrecorded.pop(row.id, None)
                break
        return self._stub(row, sent_message_id)

    async def _failed(self, row: OutboxMessage, error: TelegramError, *, permanent: bool) -> None:
        attempts = row.attempts + 1
        give_up = permanent or attempts >= self.max_attempts
        reason = f"{type(error).__name__}: {error}"
        retry_at = None if give_up else utcnow() + retry_delay(attempts)
        if give_up:
            logger.warning(
                "reply %s to chat %s given up after %d attempt(s): %s", row.id, row.chat_id, attempts, reason
            )
        else:
            logger.warning(
                "reply %s to chat %s not sent (%s); it stays in the outbox, next try in %.0f s",
                row.id,
                row.chat_id,
                reason,
                retry_delay(attempts).total_seconds(),
            )
        async with self.session_factory.begin() as session:
            await storage.mark_outbox_failed_attempt(
                session, message_id=row.id, error=reason, retry_at=retry_at
            )

    async def recover_journal(self) -> int:
        """Mark sent what the journal says Telegram accepted (a previous process was killed before its
        commit), then empty the journal; returns how many messages that concerned."""
        if self.journal is None:
            return 0
        entries = self.journal.entries()
        recovered = 0
        if entries:
            async with self.session_factory.begin() as session:
                for outbox_id, sent_message_id in entries.items():
                    row = await storage.get_outbox_message(session, message_id=outbox_id)
                    if row is not None and row.status == OutboxStatus.PENDING:
                        await storage.mark_outbox_sent(
                            session, message_id=outbox_id, sent_message_id=sent_message_id
                        )
                        recovered += 1
        self.journal.truncate()
        if recovered:
            logger.info(
                "%d message(s) sent just before the previous process stopped are marked sent", recovered
            )
        return recovered

    def compact_journal(self) -> None:
        """Empty the journal when every message in it is marked sent in the database."""
        if self.journal is not None and not self._sent_unrecorded and self.journal.size():
            self.journal.truncate()

    def _stub(self, row: OutboxMessage, sent_message_id: int | None) -> Message:
        """The sent message as far as the outbox knows it (its id, chat and text)."""
        chat_type = ChatType.PRIVATE if row.chat_id > 0 else ChatType.GROUP
        message = Message(
            message_id=int(sent_message_id or 0),
            date=row.sent_at or utcnow(),
            chat=Chat(id=row.chat_id, type=chat_type),
            text=row.text,
        )
        message.set_bot(self.bot)
        return message

    async def flush(self, *, limit: int = 100) -> int:
        """Send the pending messages that are due (not those a handler is sending right now); returns how many
        were sent. A chat's due digest entries (log entries) go out together (bot/telegram/digest.py)."""
        now = utcnow()
        async with self.session_factory.begin() as session:
            due = await storage.due_outbox_messages(
                session,
                now=now,
                created_before=now - timedelta(seconds=FLUSH_GRACE_SECONDS),
                process_key=self._process_key,
                limit=limit,
            )
        digest_rows: dict[int, list[OutboxMessage]] = {}
        for row in due:
            if row.digest:
                digest_rows.setdefault(row.chat_id, []).append(row)
        sent = 0
        for row in due:
            lock = self._locks.get(row.id)
            if lock is not None and lock.locked():
                continue
            if row.digest:
                sent += await self._deliver_digests(digest_rows.pop(row.chat_id, []))
            elif await self.deliver(row.id) is not None:
                sent += 1
        if sent:
            logger.info("sent %d message(s) from the outbox", sent)
        return sent

    async def _deliver_digests(self, rows: list[OutboxMessage]) -> int:
        """One chat's due digest entries, sent a digest at a time; returns how many entries went out."""
        mine = []
        for row in rows:
            if row.id in self._sent_unrecorded:  # sent by this process; only the bookkeeping failed
                await self._mark_sent(row, self._sent_unrecorded[row.id])
                continue
            key = self._process_key
            if key is not None and row.claimed_by != key:
                async with self.session_factory.begin() as session:
                    if not await storage.claim_outbox_message(session, message_id=row.id, process_key=key):
                        continue  # being sent by a live process sharing the database
            mine.append(row)
        by_id = {row.id: row for row in mine}
        sent = 0
        for digest in digests([Entry(row.id, row.text, row.reply_markup) for row in mine]):
            entries = [by_id[entry.id] for entry in digest.entries]
            if len(entries) == 1:
                sent += await self.deliver(entries[0].id) is not None
                continue
            try:
                message = await self.bot.send_message(
                    chat_id=entries[0].chat_id,
                    text=digest.text,
                    reply_markup=(
                        InlineKeyboardMarkup.de_json(digest.reply_markup, self.bot)
                        if digest.reply_markup
                        else None
                    ),
                )
            except BadRequest:
                # Telegram refused the digest itself (a limit it counts differently): each entry on its own,
                # so that only an entry Telegram refuses alone is lost.
                logger.warning("a digest of %d entries was refused; sending them one by one", len(entries))
                for row in entries:
                    sent += await self.deliver(row.id) is not None
                continue
            except (Forbidden, ChatMigrated) as error:
                for row in entries:
                    await self._failed(row, error, permanent=True)
                continue
            except TelegramError as error:  # retries exhausted: they stay pending, all of them
                for row in entries:
                    await self._failed(row, error, permanent=False)
                continue
            for row in entries:  # as in _deliver: before anything can wait
                self._sent_unrecorded[row.id] = message.message_id
                if self.journal is not None:
                    self.journal.record(row.id, message.message_id)
            for row in entries:
                await self._mark_sent(row, message.message_id)
            sent += len(entries)
        return sent
