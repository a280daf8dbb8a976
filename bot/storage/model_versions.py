"""Model versions: trained model directories and which one serves. Functions flush; the caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError, StorageError
from bot.storage.models import ACTIVE_SLOT, ModelStatus, ModelVersion, utcnow


async def register_model_version(
    session: AsyncSession,
    *,
    path: str,
    base_checkpoint: str,
    metrics: dict[str, Any] | None,
    status: ModelStatus = ModelStatus.CANDIDATE,
) -> ModelVersion:
    """Record a model version directory; `status=ACTIVE` registers it and activates it (retiring the old one)."""
    status = ModelStatus(status)
    version = ModelVersion(
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


async def get_active_model_version(session: AsyncSession) -> ModelVersion | None:
    return await session.scalar(select(ModelVersion).where(ModelVersion.active_slot == ACTIVE_SLOT))


async def activate_model_version(session: AsyncSession, *, version_id: int) -> ModelVersion:
    """Make a version the one active version: the previous active one becomes retired; sets activated_at.

    The database allows one active version only, so a concurrent activation fails with StorageError.
    """
    version = await _require_version(session, version_id)
    if version.status is ModelStatus.ACTIVE:
        return version
    try:
        previous = await get_active_model_version(session)
        if previous is not None:
            previous.status = ModelStatus.RETIRED
            previous.active_slot = None
            # Free the slot before taking it: the UNIQUE check is per statement.
            await session.flush()
        version.status = ModelStatus.ACTIVE
        version.status_reason = None
        version.active_slot = ACTIVE_SLOT
        version.activated_at = utcnow()
        await session.flush()
    except IntegrityError as error:
        raise StorageError("Another model version was activated at the same time; try again.") from error
    return version


async def previous_model_version(session: AsyncSession) -> ModelVersion | None:
    """The rollback target: the most recently activated version that is now retired (not the active one,
    not a rejected one)."""
    return await session.scalar(
        select(ModelVersion)
        .where(ModelVersion.status == ModelStatus.RETIRED, ModelVersion.activated_at.is_not(None))
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
        .limit(1)
    )


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
