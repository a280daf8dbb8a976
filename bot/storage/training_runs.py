"""Training runs: one queued or running at a time, enforced by the database. Functions flush; the caller commits."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.models import (
    ACTIVE_SLOT,
    FINISHED_RUN_STATUSES,
    ModelVersion,
    RunStatus,
    RunTrigger,
    TrainingRun,
    utcnow,
)

PROGRESS_MAX_LENGTH = 255


async def start_training_run(
    session: AsyncSession, *, trigger: RunTrigger, requested_by: int | None
) -> tuple[TrainingRun, bool]:
    """Queue a training run; returns (run, created).

    At most one run is queued or running, across processes: its row holds the UNIQUE `active_slot`.
    When one exists, that run is returned with created=False. Commit promptly: until the caller commits,
    a concurrent request waits for this transaction (PostgreSQL row lock, SQLite write lock).
    """
    trigger = RunTrigger(trigger)
    live_run = await get_live_training_run(session)
    if live_run is not None:
        return live_run, False
    run = TrainingRun(
        trigger=trigger, requested_by=requested_by, status=RunStatus.QUEUED, active_slot=ACTIVE_SLOT
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


async def mark_run_running(session: AsyncSession, *, run_id: int, log_path: str) -> None:
    run = await _require_run(session, run_id)
    if run.status is not RunStatus.QUEUED:
        raise InvalidDataError(f"Training run {run_id} is {run.status}, not queued; it cannot start.")
    run.status = RunStatus.RUNNING
    run.started_at = utcnow()
    run.log_path = str(log_path)
    await session.flush()


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
) -> TrainingRun:
    """End a run as succeeded, failed or rejected, freeing the one-run slot."""
    status = RunStatus(status)
    if status not in FINISHED_RUN_STATUSES:
        raise InvalidDataError(f"A run finishes as succeeded, failed or rejected, not {status}.")
    run = await _require_run(session, run_id)
    if run.status in FINISHED_RUN_STATUSES:
        raise InvalidDataError(f"Training run {run_id} already finished as {run.status}.")
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
    await session.flush()
    return run


async def get_training_run(session: AsyncSession, *, run_id: int) -> TrainingRun | None:
    return await session.get(TrainingRun, run_id)


async def list_training_runs(session: AsyncSession, *, limit: int = 10) -> list[TrainingRun]:
    """The newest runs first."""
    result = await session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit))
    return list(result)


async def last_training_run(session: AsyncSession) -> TrainingRun | None:
    return await session.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(1))


async def fail_stale_runs(session: AsyncSession, *, reason: str) -> int:
    """At start-up: runs left queued or running by a crashed process become failed; returns how many."""
    result = await session.execute(
        update(TrainingRun)
        .where(TrainingRun.active_slot == ACTIVE_SLOT)
        .values(status=RunStatus.FAILED, active_slot=None, finished_at=utcnow(), error=reason)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)


async def _require_run(session: AsyncSession, run_id: int) -> TrainingRun:
    run = await session.get(TrainingRun, run_id, populate_existing=True)
    if run is None:
        raise InvalidDataError(f"Training run {run_id} does not exist.")
    return run
