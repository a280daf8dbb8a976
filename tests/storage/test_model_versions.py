"""Model versions: one active at a time (enforced by the database), rollback target, rejection."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from bot.storage import (
    ActivationReason,
    InvalidDataError,
    ModelStatus,
    activate_model_version,
    get_active_model_version,
    get_model_version,
    list_activations,
    list_model_versions,
    mark_version_pruned,
    prunable_rejected_versions,
    register_model_version,
    reject_model_version,
    rollback_candidates,
)
from bot.storage.models import ModelVersion, utcnow


async def register(session_factory, name, **options):
    async with session_factory() as session, session.begin():
        return await register_model_version(
            session,
            path=f"models/{name}",
            base_checkpoint="kykim/bert-kor-base",
            metrics={"accuracy": 0.9},
            **options,
        )


async def activate(session_factory, version):
    async with session_factory() as session, session.begin():
        return await activate_model_version(session, version_id=version.id)


async def test_register_and_read_back(session_factory):
    version = await register(session_factory, "v1")
    async with session_factory() as session:
        stored = await get_model_version(session, version_id=version.id)
        assert await get_active_model_version(session) is None
        assert await get_model_version(session, version_id=version.id + 100) is None
    assert stored.status is ModelStatus.CANDIDATE
    assert stored.metrics == {"accuracy": 0.9}
    assert stored.created_at.tzinfo is not None and stored.activated_at is None


async def test_activation_retires_the_previous_active_version(session_factory):
    first = await register(session_factory, "v1")
    second = await register(session_factory, "v2")
    await activate(session_factory, first)
    await activate(session_factory, second)

    async with session_factory() as session:
        active = await get_active_model_version(session)
        retired = await get_model_version(session, version_id=first.id)
        statuses = [version.status for version in await list_model_versions(session)]
    assert active.id == second.id and active.activated_at is not None
    assert retired.status is ModelStatus.RETIRED
    assert statuses.count(ModelStatus.ACTIVE) == 1


async def test_registering_as_active_activates(session_factory):
    first = await register(session_factory, "v1", status=ModelStatus.ACTIVE)
    second = await register(session_factory, "v2", status=ModelStatus.ACTIVE)
    async with session_factory() as session:
        assert (await get_active_model_version(session)).id == second.id
        assert (await get_model_version(session, version_id=first.id)).status is ModelStatus.RETIRED


async def test_the_database_refuses_a_second_active_version(session_factory):
    await register(session_factory, "v1", status=ModelStatus.ACTIVE)
    row = {
        "path": "models/rogue",
        "base_checkpoint": "x",
        "status": ModelStatus.ACTIVE,
        "created_at": utcnow(),
    }
    async with session_factory() as session:
        with pytest.raises(IntegrityError):
            async with session.begin():
                # Bypassing activate_model_version: the UNIQUE active_slot must stop a second active row,
                await session.execute(insert(ModelVersion).values(**row, active_slot=1))
        with pytest.raises(IntegrityError):
            async with session.begin():
                # and the CHECK an active row without the slot.
                await session.execute(insert(ModelVersion).values(**row, active_slot=None))


async def test_rollback_candidates_walk_back_through_the_history(session_factory):
    first = await register(session_factory, "v1")
    second = await register(session_factory, "v2")
    third = await register(session_factory, "v3")
    async with session_factory() as session:
        assert await rollback_candidates(session) == []
    await activate(session_factory, first)
    async with session_factory() as session:
        assert await rollback_candidates(session) == []  # nothing to roll back to
    await activate(session_factory, second)
    await activate(session_factory, third)
    async with session_factory() as session:
        assert [v.id for v in await rollback_candidates(session)] == [second.id, first.id]

    # Roll back from v3 to v2, rejecting v3: the next rollback target is v1, never the rejected v3.
    async with session_factory() as session, session.begin():
        await activate_model_version(session, version_id=second.id, reason=ActivationReason.ROLLBACK, actor=7)
        await reject_model_version(session, version_id=third.id, reason="rolled back: worse on live data")
    async with session_factory() as session:
        assert (await get_active_model_version(session)).id == second.id
        assert [v.id for v in await rollback_candidates(session)] == [first.id]
        rejected = await get_model_version(session, version_id=third.id)
        history = await list_activations(session)
    assert rejected.status is ModelStatus.REJECTED and rejected.status_reason.startswith("rolled back")
    assert [(a.version_id, a.previous_version_id, a.reason, a.actor) for a in history] == [
        (second.id, third.id, ActivationReason.ROLLBACK, 7),
        (third.id, second.id, ActivationReason.MANUAL, None),
        (second.id, first.id, ActivationReason.MANUAL, None),
        (first.id, None, ActivationReason.MANUAL, None),
    ]


async def test_pruned_versions_are_neither_rollback_targets_nor_activatable(session_factory):
    first = await register(session_factory, "v1")
    second = await register(session_factory, "v2")
    await activate(session_factory, first)
    await activate(session_factory, second)
    async with session_factory() as session, session.begin():
        await mark_version_pruned(session, version_id=first.id)
    async with session_factory() as session:
        assert await rollback_candidates(session) == []
    with pytest.raises(InvalidDataError, match="files were deleted"):
        await activate(session_factory, first)
    with pytest.raises(InvalidDataError, match="is active"):
        async with session_factory() as session, session.begin():
            await mark_version_pruned(session, version_id=second.id)


async def test_only_rejected_versions_beyond_the_newest_few_are_prunable(session_factory):
    versions = [await register(session_factory, f"v{index}") for index in range(5)]
    async with session_factory() as session, session.begin():
        for version in versions[:4]:
            await reject_model_version(session, version_id=version.id, reason="gate")
    async with session_factory() as session:
        assert [v.id for v in await prunable_rejected_versions(session, keep=3)] == [versions[0].id]
        assert await prunable_rejected_versions(session, keep=4) == []


async def test_reject_candidate_and_refuse_to_reject_the_active_version(session_factory):
    candidate = await register(session_factory, "v1")
    active = await register(session_factory, "v2", status=ModelStatus.ACTIVE)
    async with session_factory() as session, session.begin():
        await reject_model_version(session, version_id=candidate.id, reason="accuracy dropped 3.1 points")
    with pytest.raises(InvalidDataError, match="is active"):
        async with session_factory() as session, session.begin():
            await reject_model_version(session, version_id=active.id, reason="no")
    with pytest.raises(InvalidDataError, match="does not exist"):
        async with session_factory() as session, session.begin():
            await activate_model_version(session, version_id=9999)
    async with session_factory() as session:
        assert (await get_model_version(session, version_id=candidate.id)).status is ModelStatus.REJECTED
        assert (await get_active_model_version(session)).id == active.id


async def test_list_model_versions_newest_first(session_factory):
    versions = [await register(session_factory, f"v{number}") for number in range(4)]
    async with session_factory() as session:
        listed = await list_model_versions(session, limit=3)
    assert [version.id for version in listed] == [version.id for version in reversed(versions)][:3]
