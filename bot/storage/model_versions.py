"""Model versions: trained model directories and which one serves. Functions flush; the caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError, StorageError
from bot.storage.models import (
    ACTIVE_SLOT,
    ActivationReason,
    ModelActivation,
    ModelStatus,
    ModelVersion,
    Task,
    utcnow,
)


async def register_model_version(
    session: AsyncSession,
    *,
    path: str,
    base_checkpoint: str,
    metrics: dict[str, Any] | None,
    status: ModelStatus = ModelStatus.CANDIDATE,
    task: Task = Task.SENTIMENT,
) -> ModelVersion:
    """Record a model version directory of a task; `status=ACTIVE` registers it and activates it (retiring the
    task's old one)."""
    status = ModelStatus(status)
    version = ModelVersion(
        task=Task(task),
        path=str(path),
        base_checkpoint=str(base_checkpoint),
        metrics=metrics,
        status=ModelStatus.CANDIDATE if status is ModelStatus.ACTIVE else status,
    )
    session.add(version)
    await session.flush()
    if status is ModelStatus.ACTIVE:
        await activate_model_version(session, version_id=version.id)
    return version


async def get_model_version(session: AsyncSession, *, version_id: int) -> ModelVersion | None:
    return await session.get(ModelVersion, version_id)


async def get_active_model_version(
    session: AsyncSession, *, task: Task = Task.SENTIMENT
) -> ModelVersion | None:
    return await session.scalar(
        select(ModelVersion).where(ModelVersion.task == Task(task), ModelVersion.active_slot == ACTIVE_SLOT)
    )


async def activate_model_version(
    session: AsyncSession,
    *,
    version_id: int,
    reason: ActivationReason = ActivationReason.MANUAL,
    actor: int | None = None,
    note: str | None = None,
) -> ModelVersion:
    """Make a version the one active version of its task: the task's previous active one becomes retired; sets
    activated_at and records the change in the activation history (`model_activations`).

    The database allows one active version per task only, so a concurrent activation fails with StorageError.
    A version whose files were pruned cannot be activated.
    """
    version = await _require_version(session, version_id)
    if version.status is ModelStatus.ACTIVE:
        return version
    if version.pruned_at is not None:
        raise InvalidDataError(f"Model version {version_id}'s files were deleted; it cannot be activated.")
    try:
        previous = await get_active_model_version(session, task=version.task)
        if previous is not None:
            previous.status = ModelStatus.RETIRED
            previous.active_slot = None
            # Free the slot before taking it: the UNIQUE check is per statement.
            await session.flush()
        version.status = ModelStatus.ACTIVE
        version.status_reason = None
        version.active_slot = ACTIVE_SLOT
        version.activated_at = utcnow()
        session.add(
            ModelActivation(
                version_id=version.id,
                previous_version_id=previous.id if previous is not None else None,
                reason=ActivationReason(reason),
                actor=actor,
                note=note,
            )
        )
        await session.flush()
    except IntegrityError as error:
        raise StorageError("Another model version was activated at the same time; try again.") from error
    return version


async def rollback_candidates(session: AsyncSession, *, task: Task = Task.SENTIMENT) -> list[ModelVersion]:
    """Where /rollback may go, best first: the task's versions that served before (most recently active first) and were
    neither rolled back from nor rejected, with their files still present. The caller tries them in order and
    skips those that cannot load."""
    result = await session.scalars(
        select(ModelVersion)
        .where(
            ModelVersion.task == Task(task),
            ModelVersion.status == ModelStatus.RETIRED,
            ModelVersion.activated_at.is_not(None),
            ModelVersion.pruned_at.is_(None),
        )
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
    )
    return list(result)


async def served_versions(session: AsyncSession, *, task: Task = Task.SENTIMENT) -> list[ModelVersion]:
    """Every version of the task that was ever active and is not rejected (the active one included), newest
    first."""
    result = await session.scalars(
        select(ModelVersion)
        .where(
            ModelVersion.task == Task(task),
            ModelVersion.activated_at.is_not(None),
            ModelVersion.status != ModelStatus.REJECTED,
        )
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
    )
    return list(result)


async def list_activations(
    session: AsyncSession, *, limit: int = 20, version_id: int | None = None
) -> list[ModelActivation]:
    """The activation history, newest first (`version_id`: only the changes to or from that version)."""
    query = select(ModelActivation)
    if version_id is not None:
        query = query.where(
            or_(ModelActivation.version_id == version_id, ModelActivation.previous_version_id == version_id)
        )
    result = await session.scalars(query.order_by(ModelActivation.id.desc()).limit(limit))
    return list(result)


async def prunable_rejected_versions(session: AsyncSession, *, keep: int) -> list[ModelVersion]:
    """Rejected versions beyond the newest `keep` whose files are still on disk (retention)."""
    result = await session.scalars(
        select(ModelVersion)
        .where(ModelVersion.status == ModelStatus.REJECTED, ModelVersion.pruned_at.is_(None))
        .order_by(ModelVersion.id.desc())
        .offset(max(keep, 0))
    )
    return list(result)


async def mark_version_pruned(session: AsyncSession, *, version_id: int) -> None:
    version = await _require_version(session, version_id)
    if version.status is ModelStatus.ACTIVE:
        raise InvalidDataError(f"Model version {version_id} is active; its files cannot be deleted.")
    version.pruned_at = utcnow()
    await session.flush()


async def reject_model_version(session: AsyncSession, *, version_id: int, reason: str) -> None:
    """Mark a version rejected (e.g. it failed the promotion gate, or was rolled back for being bad).

    The active version cannot be rejected: activate another one first.
    """
    version = await _require_version(session, version_id)
    if version.status is ModelStatus.ACTIVE:
        raise InvalidDataError(
            f"Model version {version_id} is active; activate another version before rejecting it."
        )
    version.status = ModelStatus.REJECTED
    version.status_reason = reason
    await session.flush()


async def list_model_versions(session: AsyncSession, *, limit: int = 20) -> list[ModelVersion]:
    """The newest versions first."""
    result = await session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit))
    return list(result)


async def _require_version(session: AsyncSession, version_id: int) -> ModelVersion:
    version = await session.get(ModelVersion, version_id, populate_existing=True)
    if version is None:
        raise InvalidDataError(f"Model version {version_id} does not exist.")
    return version
