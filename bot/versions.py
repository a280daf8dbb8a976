"""Model version lifecycle: import, activate, roll back, and fall back at start-up.

Every change of the active version goes through here, and always in this order: load the version as it is served
and run a trial prediction first, then change the database (with a line in the activation history). So the
database never names a version that cannot serve, and a failed check changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import storage
from bot.model_store import ModelStoreError, publish_version
from bot.serving import load_serving_classifier, prepare_model_version
from bot.storage import ActivationReason, Task

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.settings import Settings
    from classifier import Classifier

logger = logging.getLogger(__name__)


class VersionError(Exception):
    """A version cannot become active; the message says why in plain words (nothing was changed)."""

    def __init__(self, message: str, *, skipped: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        self.skipped = skipped or []  # versions tried and found unable to load


@dataclass(frozen=True)
class Activated:
    version: Any  # the ModelVersion now active
    classifier: Classifier  # loaded as served, ready to swap in
    previous_id: int | None = None
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (version id, why it could not load)


async def _prepared(path: str | Path, settings: Settings) -> Classifier:
    """`prepare_model_version` off the event loop, calibrating a fast path it has to build on the configured
    training data (read only then); any failure becomes a one-line VersionError."""
    from bot.retraining.dataset import calibration_texts
    from bot.retraining.version_files import task_of_directory

    try:
        return await asyncio.to_thread(
            prepare_model_version,
            path,
            settings,
            # calibrated on its own task's data: a toxicity model on comments, sentiment on reviews
            calibration_texts=functools.partial(calibration_texts, settings, task=task_of_directory(path)),
        )
    except Exception as error:  # whatever breaks, the version cannot serve
        raise VersionError(_one_line(error)) from error


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


async def activate(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    version_id: int,
    reason: ActivationReason,
    actor: int | None = None,
    note: str | None = None,
) -> Activated:
    """Validate a registered version (load as served + trial prediction), then make it the active one."""
    async with session_factory() as session:
        version = await storage.get_model_version(session, version_id=version_id)
        active = (
            None if version is None else await storage.get_active_model_version(session, task=version.task)
        )
    if version is None:
        raise VersionError(f"there is no model version #{version_id}")
    if version.pruned_at is not None:
        raise VersionError(f"model version #{version_id}'s files were deleted (retention)")
    classifier = await _prepared(version.path, settings)
    async with session_factory() as session, session.begin():
        version = await storage.activate_model_version(
            session, version_id=version_id, reason=reason, actor=actor, note=note
        )
    return Activated(version, classifier, previous_id=active.id if active is not None else None)


async def register(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    path: Path,
    activate_it: bool,
) -> tuple[int, bool]:
    """Validate a model directory (load as served + trial prediction; builds the serving artefacts once),
    register it with its metrics.json as a version of the task it judges (`Classifier.task`), and activate it
    when asked or when that task has no active version yet.
    Returns (version id, activated). Raises VersionError, registering nothing, when it cannot serve."""
    classifier = await _prepared(path, settings)
    try:  # every host must be able to read it before the database names it
        await asyncio.to_thread(publish_version, Path(path), settings)
    except ModelStoreError as error:
        raise VersionError(str(error)) from error
    metrics = classifier.metrics or {}
    task = Task(classifier.task)
    async with session_factory() as session, session.begin():
        version = await storage.register_model_version(
            session,
            path=str(path),
            base_checkpoint=str(metrics.get("base_checkpoint") or ""),
            metrics=metrics,
            task=task,
        )
        activate_it = activate_it or await storage.get_active_model_version(session, task=task) is None
        if activate_it:
            await storage.activate_model_version(
                session, version_id=version.id, reason=ActivationReason.IMPORT
            )
        return version.id, activate_it


async def rollback(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    actor: int | None,
    task: Task = Task.SENTIMENT,
) -> Activated:
    """Return to the task's version that served before its active one, walking back through the history.

    The version rolled back from is marked rejected, so a second rollback goes further back instead of returning
    to it. Versions that cannot load are skipped (and said so). Raises VersionError when no earlier version can
    serve; then nothing changed.
    """
    async with session_factory() as session:
        active = await storage.get_active_model_version(session, task=task)
        candidates = await storage.rollback_candidates(session, task=task)
    skipped: list[tuple[int, str]] = []
    for candidate in candidates:
        try:
            classifier = await _prepared(candidate.path, settings)
        except VersionError as error:
            logger.warning("rollback skips model version %s: %s", candidate.id, error)
            skipped.append((candidate.id, str(error)))
            continue
        async with session_factory() as session, session.begin():
            version = await storage.activate_model_version(
                session,
                version_id=candidate.id,
                reason=ActivationReason.ROLLBACK,
                actor=actor,
                note=f"rolled back from #{active.id}" if active is not None else None,
            )
            if active is not None:
                await storage.reject_model_version(
                    session,
                    version_id=active.id,
                    reason=f"rolled back by {actor if actor is not None else 'an admin'}",
                )
        logger.info("rolled back from model version %s to %s", active.id if active else None, version.id)
        return Activated(version, classifier, previous_id=active.id if active else None, skipped=skipped)
    raise VersionError(
        "no earlier model version can serve"
        + ("" if not skipped else ": " + "; ".join(f"#{vid}: {why}" for vid, why in skipped)),
        skipped=skipped,
    )


async def load_active_or_fall_back(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings, *, task: Task = Task.SENTIMENT
) -> Activated | None:
    """At start-up: the task's active version loaded as served (with a trial prediction), or, when it cannot load, the
    newest earlier version that can, activated as a recorded fallback. None when no version is active yet.
    Raises VersionError when none can serve."""
    async with session_factory() as session:
        active = await storage.get_active_model_version(session, task=task)
        served = await storage.served_versions(session, task=task)
    if active is None:
        return None
    try:
        classifier = await asyncio.to_thread(_load_checked, active.path, settings)
        return Activated(active, classifier, previous_id=None)
    except Exception as error:  # noqa: BLE001 - whatever breaks, it cannot serve
        problem = _one_line(error)
    logger.error(
        "ACTIVE MODEL VERSION #%s CANNOT LOAD (%s); falling back to an earlier version", active.id, problem
    )
    skipped = [(active.id, problem)]
    for candidate in served:
        if candidate.id == active.id or candidate.pruned_at is not None:
            continue
        try:
            fallback = await activate(
                session_factory,
                settings,
                version_id=candidate.id,
                reason=ActivationReason.FALLBACK,
                note=f"#{active.id} could not load: {problem}",
            )
        except VersionError as error:
            skipped.append((candidate.id, str(error)))
            continue
        async with session_factory() as session, session.begin():
            await storage.reject_model_version(
                session, version_id=active.id, reason=f"could not load at start-up: {problem}"
            )
        logger.error(
            "NOW SERVING MODEL VERSION #%s INSTEAD OF #%s (recorded in the activation history)",
            fallback.version.id,
            active.id,
        )
        return Activated(fallback.version, fallback.classifier, previous_id=active.id, skipped=skipped)
    raise VersionError(
        "the active model version cannot load and no earlier version can serve: "
        + "; ".join(f"#{vid}: {why}" for vid, why in skipped)
    )


def _load_checked(path: str | Path, settings: Settings) -> Classifier:
    classifier = load_serving_classifier(path, settings)
    classifier.self_check()
    return classifier
