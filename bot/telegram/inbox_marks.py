"""The inbox's bookkeeping for the runner: processing starts and ends, committed in groups, and the adoption of
updates that no live process holds."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram import Update

from bot import storage
from bot.storage import InboxStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.storage.process_claims import ProcessLock

logger = logging.getLogger("bot.telegram.runner")

DB_RETRY_ATTEMPTS = 3


class InboxMarks:
    """Group commit of the inbox bookkeeping: "processing starts" (awaited: it must be on disk before the
    handler runs, or a poison update would never be counted) and "done" (not awaited) for every update that
    asked since the last commit, in one short transaction. A burst then costs a few transactions instead of
    two per update queueing for SQLite's one write lock, which keeps the commits that mark replies sent quick.

    A claim succeeds only for updates this process holds (`process_lock.key`); one adopted meanwhile by another
    process, after this one lost its lock, is left to it.
    """

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], bot_id: int, process_lock: ProcessLock
    ) -> None:
        self._session_factory = session_factory
        self._bot_id = bot_id
        self._process_lock = process_lock
        self._claims: dict[int, asyncio.Future[int | None]] = {}
        self._done: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbox-marks")

    async def claim(self, update_id: int) -> int | None:
        """Attempts so far once committed (0: not pending any more; None: the database failed)."""
        future = self._claims.get(update_id)
        if future is None:
            future = self._claims[update_id] = asyncio.get_running_loop().create_future()
            self._wake.set()
        return await asyncio.shield(future)

    def done(self, update_id: int) -> None:
        self._done.add(update_id)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.commit()

    async def commit(self) -> None:
        claims, self._claims = self._claims, {}
        done, self._done = self._done, set()
        if not claims and not done:
            return
        attempts: dict[int, int] | None = None
        for attempt in range(1, DB_RETRY_ATTEMPTS + 1):
            try:
                async with self._session_factory.begin() as session:
                    attempts = await storage.start_updates(
                        session,
                        bot_id=self._bot_id,
                        update_ids=list(claims),
                        process_key=self._process_lock.key,
                    )
                    await storage.finish_updates(session, bot_id=self._bot_id, update_ids=sorted(done))
                break
            except asyncio.CancelledError:
                self._done |= done  # committed by the final flush
                for future in claims.values():
                    if not future.done():
                        future.set_result(None)
                raise
            except Exception as error:  # noqa: BLE001 - the rows stay pending; processed again after a restart
                if attempt == DB_RETRY_ATTEMPTS:
                    logger.warning("inbox: could not record progress (%s: %s)", type(error).__name__, error)
                    break
                await asyncio.sleep(0.25 * attempt)
        for update_id, future in claims.items():
            if not future.done():
                future.set_result(None if attempts is None else attempts.get(update_id, 0))

    async def close(self) -> None:
        """Stop the loop, then commit what is left."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.commit()


@dataclass
class AdoptedUpdates:
    updates: list[Update] = field(default_factory=list)  # to process concurrently
    suspects: list[Update] = field(
        default_factory=list
    )  # started `suspect_attempts` times already: one at a time


async def adopt_pending_updates(
    session_factory: async_sessionmaker[AsyncSession],
    bot: Any,
    *,
    process_key: int,
    max_attempts: int,
    suspect_attempts: int,
) -> AdoptedUpdates:
    """Adopt, for this process, the pending updates no live process holds (storage.adopt_updates); mark failed
    those whose processing already started `max_attempts` times and those that cannot be read; return the rest."""
    async with session_factory.begin() as session:
        adopted = await storage.adopt_updates(session, bot_id=bot.id, process_key=process_key)
    result = AdoptedUpdates()
    if not adopted:
        return result
    async with session_factory.begin() as session:
        poisoned = await storage.fail_poison_updates(
            session, bot_id=bot.id, update_ids=adopted, max_attempts=max_attempts
        )
    for update_id in poisoned:
        logger.warning(
            "update %s skipped: its processing started %d times and never finished", update_id, max_attempts
        )
    async with session_factory.begin() as session:
        rows = await storage.pending_updates(session, bot_id=bot.id, update_ids=adopted)
    for row in rows:
        try:
            update = Update.de_json(row.payload, bot)
        except Exception as error:  # noqa: BLE001 - an unreadable payload cannot be processed, ever
            logger.warning("update %s skipped: unreadable (%s)", row.update_id, type(error).__name__)
            async with session_factory.begin() as session:
                await storage.finish_updates(
                    session,
                    bot_id=bot.id,
                    update_ids=[row.update_id],
                    status=InboxStatus.FAILED,
                    error=f"unreadable: {error}",
                )
            continue
        (result.suspects if row.attempts >= suspect_attempts else result.updates).append(update)
    return result
