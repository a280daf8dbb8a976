"""Training runs: one queued or running at a time, enforced by the database. Functions flush; the caller commits."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.models import (
    ACTIVE_SLOT,
    FINISHED_RUN_STATUSES,
    ModelVersion,
    RunStatus,
    RunTrigger,
    Task,
    TrainingRun,
    utcnow,
)


class RunNotOwnedError(InvalidDataError):
    """The run finished or was taken over (declared stale) by another process."""


PROGRESS_MAX_LENGTH = 255
# A live run without a heartbeat for this long is abandoned (its owner beats every few seconds).
DEFAULT_STALE_AFTER = timedelta(seconds=90)


async def start_training_run(
    session: AsyncSession,
    *,
    trigger: RunTrigger,
    requested_by: int | None,
    owner: str | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    task: Task = Task.SENTIMENT,
) -> tuple[TrainingRun, bool]:
    """Queue a training run of the task's model owned by `owner`; returns (run, created).

    At most one run is queued or running, across processes and tasks (they share the machine): its row holds the UNIQUE `active_slot`.
    When a live one exists, that run is returned with created=False, unless it is stale (its owner stopped
    beating, see `is_stale`): then it is failed here and the new run takes the slot, so a killed process never
    blocks retraining. Commit promptly: until the caller commits, a concurrent request waits for this
    transaction (PostgreSQL row lock, SQLite write lock).
    """
    trigger = RunTrigger(trigger)
    live_run = await get_live_training_run(session)
    if live_run is not None:
        if not is_stale(live_run, stale_after=stale_after):
            return live_run, False
        await _fail_stale(session, live_run)
    now = utcnow()
    run = TrainingRun(
        task=Task(task),
        trigger=trigger,
        requested_by=requested_by,
        status=RunStatus.QUEUED,
        active_slot=ACTIVE_SLOT,
        owner=owner,
        heartbeat_at=now,
        created_at=now,
    )
    try:
        # A SAVEPOINT: losing the race to another process leaves the caller's transaction usable.
        async with session.begin_nested():
            session.add(run)
    except IntegrityError:
        live_run = await get_live_training_run(session)
        if live_run is None:
            raise
        return live_run, False
    return run, True


async def get_live_training_run(session: AsyncSession) -> TrainingRun | None:
    """The run that is queued or running, if any."""
    return await session.scalar(
        select(TrainingRun)
        .where(TrainingRun.active_slot == ACTIVE_SLOT)
        .execution_options(populate_existing=True)
    )


async def mark_run_running(
    session: AsyncSession, *, run_id: int, log_path: str, seed: int | None = None, owner: str | None = None
) -> None:
    run = await _require_run(session, run_id)
    if run.status is not RunStatus.QUEUED:
        raise InvalidDataError(f"Training run {run_id} is {run.status}, not queued; it cannot start.")
    if owner is not None and run.owner not in (None, owner):
        raise InvalidDataError(f"Training run {run_id} belongs to {run.owner}, not {owner}.")
    run.status = RunStatus.RUNNING
    run.started_at = run.heartbeat_at = utcnow()
    run.log_path = str(log_path)
    run.seed = seed
    await session.flush()


async def claim_queued_run(session: AsyncSession, *, run_id: int, owner: str) -> bool:
    """A training worker takes a run a bot queued for it (queued, no owner yet); False when the run no longer
    waits: another worker took it, or it was failed as abandoned. One conditional UPDATE, so two workers handed
    the same run cannot both win (on PostgreSQL the second waits for the first's row lock, then finds an owner)."""
    result = await session.execute(
        update(TrainingRun)
        .where(
            TrainingRun.id == run_id,
            TrainingRun.status == RunStatus.QUEUED,
            TrainingRun.owner.is_(None),
            TrainingRun.active_slot == ACTIVE_SLOT,
        )
        .values(owner=owner, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


async def heartbeat_run(session: AsyncSession, *, run_id: int, owner: str) -> bool:
    """The owner's sign of life; False when the run is no longer live or no longer its own (it was declared
    stale and failed by another process): the owner must then stop, and never promote its candidate."""
    result = await session.execute(
        update(TrainingRun)
        .where(
            TrainingRun.id == run_id,
            TrainingRun.owner == owner,
            TrainingRun.active_slot == ACTIVE_SLOT,
        )
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)


def is_stale(
    run: TrainingRun, *, stale_after: timedelta = DEFAULT_STALE_AFTER, now: datetime | None = None
) -> bool:
    """A live run whose owner stopped beating: no heartbeat for `stale_after`, or an owner process on this host
    that no longer exists (then there is no need to wait)."""
    if run.active_slot is None:
        return False
    if run.owner is not None and owner_process_gone(run.owner):
        return True
    last_sign = run.heartbeat_at or run.started_at or run.created_at
    return last_sign is None or (now or utcnow()) - last_sign > stale_after


def owner_process_gone(owner: str) -> bool:
    """True when `owner` ("host:pid:nonce") names a process on this host that is not running."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdecimal():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


async def update_run_progress(session: AsyncSession, *, run_id: int, progress: str) -> None:
    """A short progress line for /status (cut to 255 characters)."""
    result = await session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run_id)
        .values(progress=progress[:PROGRESS_MAX_LENGTH])
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount == 0:
        raise InvalidDataError(f"Training run {run_id} does not exist.")


async def finish_training_run(
    session: AsyncSession,
    *,
    run_id: int,
    status: RunStatus,
    error: str | None = None,
    model_version_id: int | None = None,
    example_count: int | None = None,
    correction_count: int | None = None,
    gate: dict | None = None,
    owner: str | None = None,
) -> TrainingRun:
    """End a run as succeeded, failed or rejected, freeing the one-run slot.

    With `owner`, only that owner may finish it: a run another process declared stale raises RunNotOwnedError.
    """
    status = RunStatus(status)
    if status not in FINISHED_RUN_STATUSES:
        raise InvalidDataError(f"A run finishes as succeeded, failed or rejected, not {status}.")
    run = await _require_run(session, run_id)
    if run.status in FINISHED_RUN_STATUSES:
        raise RunNotOwnedError(f"Training run {run_id} already finished as {run.status}.")
    if owner is not None and run.owner not in (None, owner):
        raise RunNotOwnedError(f"Training run {run_id} belongs to {run.owner}, not {owner}.")
    if model_version_id is not None and await session.get(ModelVersion, model_version_id) is None:
        raise InvalidDataError(f"Model version {model_version_id} does not exist.")
    run.status = status
    run.active_slot = None
    run.finished_at = utcnow()
    run.error = error
    if model_version_id is not None:
        run.model_version_id = model_version_id
    if example_count is not None:
        run.example_count = example_count
    if correction_count is not None:
        run.correction_count = correction_count
    if gate is not None:
        run.gate = gate
    await session.flush()
    return run


async def require_run_owner(session: AsyncSession, *, run_id: int, owner: str) -> TrainingRun:
    """The run, still live and owned by `owner`; RunNotOwnedError otherwise. Call it in the transaction that
    activates a run's candidate, so a run declared stale can never make its model active."""
    run = await _require_run(session, run_id)
    if run.active_slot is None or run.owner != owner:
        raise RunNotOwnedError(
            f"Training run {run_id} is {run.status} and owned by {run.owner}; this process ({owner}) lost it."
        )
    return run


async def get_training_run(session: AsyncSession, *, run_id: int) -> TrainingRun | None:
    return await session.get(TrainingRun, run_id)


async def list_training_runs(
    session: AsyncSession, *, limit: int = 10, model_version_id: int | None = None
) -> list[TrainingRun]:
    """The newest runs first (`model_version_id`: only the run that trained that version)."""
    query = select(TrainingRun)
    if model_version_id is not None:
        query = query.where(TrainingRun.model_version_id == model_version_id)
    result = await session.scalars(query.order_by(TrainingRun.id.desc()).limit(limit))
    return list(result)


async def training_run_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """How many runs each (task, status) has: one grouped count (runs are few and never deleted)."""
    rows = await session.execute(
        select(TrainingRun.task, TrainingRun.status, func.count()).group_by(
            TrainingRun.task, TrainingRun.status
        )
    )
    return {(Task(task).value, RunStatus(status).value): int(count) for task, status, count in rows}


async def last_training_run(session: AsyncSession) -> TrainingRun | None:
    return await session.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(1))


async def fail_stale_runs(session: AsyncSession, *, stale_after: timedelta = DEFAULT_STALE_AFTER) -> int:
    """Fail the live run if it is stale (see `is_stale`); a run owned by a live process is left alone.
    Returns how many runs were failed (0 or 1)."""
    live_run = await get_live_training_run(session)
    if live_run is None or not is_stale(live_run, stale_after=stale_after):
        return 0
    await _fail_stale(session, live_run)
    return 1


async def _fail_stale(session: AsyncSession, run: TrainingRun) -> None:
    last_sign = run.heartbeat_at or run.started_at or run.created_at
    seen = last_sign.strftime("%Y-%m-%d %H:%M:%S UTC") if last_sign else "never"
    run.status = RunStatus.FAILED
    run.active_slot = None
    run.finished_at = utcnow()
    if run.owner is None:  # queued for a training worker (TRAINING_EXECUTOR=worker) that never took it
        run.error = f"no training worker took it (queued at {seen}); is `moderator worker` running?"
    else:
        run.error = f"abandoned: its process ({run.owner}) stopped; last heartbeat {seen}"
    # Free the slot now: the UNIQUE check runs per statement, and the caller may take the slot next.
    await session.flush()


async def _require_run(session: AsyncSession, run_id: int) -> TrainingRun:
    run = await session.get(TrainingRun, run_id, populate_existing=True)
    if run is None:
        raise InvalidDataError(f"Training run {run_id} does not exist.")
    return run
