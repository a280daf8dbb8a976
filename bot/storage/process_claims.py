"""Which bot process handles a row, when several `moderator run` processes share one PostgreSQL database.

In webhook mode a load balancer spreads Telegram's requests over several bot processes. Each stores the updates it
receives with its own key in `claimed_by` and processes only the rows it holds; replies and moderation actions are
sent by the process that holds them. A process that is gone (killed, crashed, cut off from the database) must
leave its rows to the others, at once and without a timeout to tune, so liveness is PostgreSQL's own: every process
holds a session advisory lock `(LOCK_NAMESPACE, key)` on a connection of its own for as long as it runs
(`ProcessLock`), and the server releases it the moment that connection ends. A row whose key has no granted lock
in `pg_locks` belongs to nobody and may be taken over, by one process: the takeover is a conditional UPDATE.

On SQLite one process runs (long polling allows one poller, and several processes need PostgreSQL), so a row held
under any other key was left by an earlier run of this process and is taken over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ColumnElement, Select, cast, column, func, or_, select, table, true, update

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = (
    0x6D6F64  # "mod": the first half of every bot process's advisory lock (its key is the second)
)
KEEPALIVE_SECONDS = 1.0  # how often the lock's connection is checked, and re-established once lost

_pg_locks = table(
    "pg_locks",
    column("locktype"),
    column("database"),
    column("classid"),
    column("objid"),
    column("objsubid"),
    column("granted"),
)
_pg_database = table("pg_database", column("oid"), column("datname"))


def new_process_key() -> int:
    """A random key for one process's lifetime (a positive 32-bit integer: the advisory lock's second half)."""
    return 1 + secrets.randbelow(2**31 - 2)


def _live_keys() -> Select[tuple[int]]:
    """PostgreSQL: the keys of the bot processes that hold their lock in this database now (an uncorrelated
    subquery: `pg_locks` is read once per statement, not once per row)."""
    this_database = (
        select(_pg_database.c.oid).where(_pg_database.c.datname == func.current_database()).scalar_subquery()
    )
    return select(cast(_pg_locks.c.objid, BigInteger)).where(
        _pg_locks.c.locktype == "advisory",
        _pg_locks.c.database == this_database,
        cast(_pg_locks.c.classid, BigInteger) == LOCK_NAMESPACE,
        _pg_locks.c.objsubid == 2,  # the two-integer form of pg_advisory_lock
        _pg_locks.c.granted.is_(true()),
    )


def claimable_by(
    session: AsyncSession, owner_column: ColumnElement[int], process_key: int
) -> ColumnElement[bool]:
    """The rows process `process_key` may handle: unclaimed, its own, or held by a process that is gone."""
    if session.get_bind().dialect.name != "postgresql":
        return true()  # SQLite: one process; any other key was left by an earlier run
    return or_(owner_column.is_(None), owner_column == process_key, owner_column.not_in(_live_keys()))


async def claim_row(
    session: AsyncSession, model: type[Any], *, row_id: int, pending: enum.Enum, process_key: int
) -> bool:
    """Make process `process_key` the one that handles a pending row of `model` (a table with `id`, `status` and
    `claimed_by`): unclaimed, its own, or held by a process that is gone. One conditional UPDATE, so of two
    processes claiming at once one wins. False when the row is not pending or a live process holds it."""
    claimed = await session.scalar(
        update(model)
        .where(
            model.id == row_id,
            model.status == pending,
            claimable_by(session, model.claimed_by, process_key),
        )
        .values(claimed_by=process_key)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    return claimed is not None


class ProcessLock:
    """Holds this process's advisory lock on a connection of its own (PostgreSQL; nothing to hold on SQLite).

    `start()` takes the lock (a new key if a live process holds the drawn one) and keeps it: the connection is
    checked every KEEPALIVE_SECONDS and, once lost (PostgreSQL restarted), opened again and the lock taken again
    under the same key. Between the loss and the new lock other processes may take this process's rows over; it
    then finds them claimed by another and leaves them (`claimable_by`).
    """

    def __init__(self, engine: AsyncEngine, key: int | None = None) -> None:
        self.engine = engine
        self.key = new_process_key() if key is None else key
        self.enabled = engine.dialect.name == "postgresql"
        self._connection: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.enabled:
            return
        while not await self._lock():
            self.key = new_process_key()  # drawn by a live process: 1 in 2**31 per process
        self._task = asyncio.create_task(self._keep(), name="process-lock")

    async def _lock(self) -> bool:
        connection = await self.engine.connect()
        try:
            locked = bool(
                await connection.scalar(select(func.pg_try_advisory_lock(LOCK_NAMESPACE, self.key)))
            )
            await connection.commit()  # a session lock outlives the transaction; nothing stays open
        except BaseException:
            await connection.close()
            raise
        if not locked:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                if self._connection is None:
                    if await self._lock():
                        logger.info("process lock %d taken again", self.key)
                    else:
                        logger.error("process lock %d is held by another process; taking a new key", self.key)
                        self.key = new_process_key()
                    continue
                await self._connection.scalar(select(1))
                await self._connection.commit()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the database is away; retried every second
                if self._connection is not None:
                    logger.warning(
                        "process lock %d lost (%s); other processes may take over this one's updates",
                        self.key,
                        type(error).__name__,
                    )
                    connection, self._connection = self._connection, None
                    with contextlib.suppress(Exception):
                        await connection.invalidate()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                await connection.invalidate()  # closes the session (a pooled one would keep the lock)
