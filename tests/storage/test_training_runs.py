"""Training runs: one queued/running run at a time (enforced by the database), lifecycle, stale-run recovery."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from storage_helpers import count_rows

from bot.storage import (
    InvalidDataError,
    RunNotOwnedError,
    RunStatus,
    RunTrigger,
    create_engine,
    fail_stale_runs,
    finish_training_run,
    get_training_run,
    heartbeat_run,
    is_stale,
    last_training_run,
    list_training_runs,
    make_session_factory,
    mark_run_running,
    register_model_version,
    require_run_owner,
    start_training_run,
    update_run_progress,
)
from bot.storage.models import TrainingRun, utcnow


async def start(session_factory, trigger=RunTrigger.ADMIN, requested_by=1000, owner=None):
    async with session_factory() as session, session.begin():
        return await start_training_run(session, trigger=trigger, requested_by=requested_by, owner=owner)


async def test_run_lifecycle(session_factory):
    run, created = await start(session_factory)
    assert created and run.status is RunStatus.QUEUED and run.requested_by == 1000
    async with session_factory() as session, session.begin():
        await mark_run_running(session, run_id=run.id, log_path="runs/1/train.log")
        await update_run_progress(session, run_id=run.id, progress="epoch 1/2 step 10/40 " + "x" * 400)
        version = await register_model_version(session, path="models/v2", base_checkpoint="b", metrics={})
    async with session_factory() as session:
        running = await get_training_run(session, run_id=run.id)
    assert running.status is RunStatus.RUNNING and running.started_at is not None
    assert running.log_path == "runs/1/train.log"
    assert running.progress.startswith("epoch 1/2") and len(running.progress) == 255

    async with session_factory() as session, session.begin():
        finished = await finish_training_run(
            session,
            run_id=run.id,
            status=RunStatus.SUCCEEDED,
            model_version_id=version.id,
            example_count=4000,
            correction_count=12,
        )
    assert finished.status is RunStatus.SUCCEEDED and finished.finished_at >= finished.started_at
    assert (finished.model_version_id, finished.example_count, finished.correction_count) == (
        version.id,
        4000,
        12,
    )
    assert finished.active_slot is None


async def test_a_second_request_returns_the_live_run(session_factory):
    run, created = await start(session_factory, RunTrigger.SCHEDULE, None)
    again, created_again = await start(session_factory, RunTrigger.ADMIN, 1000)
    assert created and not created_again and again.id == run.id
    assert await count_rows(session_factory, TrainingRun) == 1

    async with session_factory() as session, session.begin():
        await finish_training_run(session, run_id=run.id, status=RunStatus.FAILED, error="out of memory")
    next_run, created_next = await start(session_factory, RunTrigger.CLI, None)
    assert created_next and next_run.id != run.id
    async with session_factory() as session:
        assert (await last_training_run(session)).id == next_run.id
        listed = await list_training_runs(session, limit=10)
    assert [listed_run.id for listed_run in listed] == [next_run.id, run.id]
    assert listed[1].error == "out of memory"


async def test_concurrent_requests_from_two_processes_create_exactly_one_run(migrated_url):
    # Two engines stand for two processes: separate connection pools, one database.
    engines = [create_engine(migrated_url), create_engine(migrated_url)]
    try:
        factories = [make_session_factory(engine) for engine in engines]
        results = await asyncio.gather(
            *(start(factories[index % 2], RunTrigger.ADMIN, index) for index in range(10))
        )
        assert sum(created for _, created in results) == 1
        assert len({run.id for run, _ in results}) == 1
        assert await count_rows(factories[0], TrainingRun) == 1
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_database_refuses_a_second_live_run(session_factory):
    await start(session_factory)
    row = {"trigger": RunTrigger.CLI, "status": RunStatus.QUEUED, "created_at": utcnow()}
    async with session_factory() as session:
        with pytest.raises(IntegrityError):
            async with session.begin():
                await session.execute(insert(TrainingRun).values(**row, active_slot=1))
        with pytest.raises(IntegrityError):
            async with session.begin():
                await session.execute(insert(TrainingRun).values(**row, active_slot=None))
    assert await count_rows(session_factory, TrainingRun) == 1


async def test_invalid_transitions_are_clear_errors(session_factory):
    run, _ = await start(session_factory)
    with pytest.raises(InvalidDataError, match="succeeded, failed or rejected"):
        async with session_factory() as session, session.begin():
            await finish_training_run(session, run_id=run.id, status=RunStatus.RUNNING)
    with pytest.raises(InvalidDataError, match="Model version 77 does not exist"):
        async with session_factory() as session, session.begin():
            await finish_training_run(session, run_id=run.id, status=RunStatus.SUCCEEDED, model_version_id=77)
    async with session_factory() as session, session.begin():
        await finish_training_run(
            session, run_id=run.id, status=RunStatus.REJECTED, error="gate: -2.0 points"
        )
    with pytest.raises(InvalidDataError, match="already finished"):
        async with session_factory() as session, session.begin():
            await finish_training_run(session, run_id=run.id, status=RunStatus.FAILED)
    with pytest.raises(InvalidDataError, match="not queued"):
        async with session_factory() as session, session.begin():
            await mark_run_running(session, run_id=run.id, log_path="x.log")
    with pytest.raises(InvalidDataError, match="does not exist"):
        async with session_factory() as session, session.begin():
            await update_run_progress(session, run_id=run.id + 1, progress="?")
    async with session_factory() as session:
        assert (await get_training_run(session, run_id=run.id)).status is RunStatus.REJECTED


async def test_only_runs_whose_heartbeat_stopped_are_stale(session_factory):
    finished, _ = await start(session_factory)
    async with session_factory() as session, session.begin():
        await finish_training_run(session, run_id=finished.id, status=RunStatus.SUCCEEDED)
    live, _ = await start(session_factory, owner="elsewhere:1:a")
    async with session_factory() as session, session.begin():
        await mark_run_running(
            session, run_id=live.id, log_path="runs/2/train.log", seed=5, owner="elsewhere:1:a"
        )

    # A run owned by another live process (here: another host, beating) is never swept, and blocks a new run.
    async with session_factory() as session, session.begin():
        assert await fail_stale_runs(session, stale_after=timedelta(seconds=60)) == 0
    again, created = await start(session_factory, owner="me:2:b")
    assert not created and again.id == live.id
    async with session_factory() as session, session.begin():
        assert await heartbeat_run(session, run_id=live.id, owner="elsewhere:1:a")
        assert not await heartbeat_run(session, run_id=live.id, owner="me:2:b")  # not its owner

    # Its heartbeat stops: after `stale_after` it is failed, by the sweep or by the next request.
    async with session_factory() as session, session.begin():
        row = await session.get(TrainingRun, live.id)
        row.heartbeat_at = utcnow() - timedelta(seconds=120)
    async with session_factory() as session, session.begin():
        assert await fail_stale_runs(session, stale_after=timedelta(seconds=60)) == 1
        assert await fail_stale_runs(session, stale_after=timedelta(seconds=60)) == 0
    async with session_factory() as session:
        recovered = await get_training_run(session, run_id=live.id)
        untouched = await get_training_run(session, run_id=finished.id)
    assert recovered.status is RunStatus.FAILED and recovered.error.startswith("abandoned")
    assert recovered.finished_at is not None and recovered.seed == 5
    assert untouched.status is RunStatus.SUCCEEDED and untouched.error is None
    async with session_factory() as session, session.begin():
        assert not await heartbeat_run(
            session, run_id=live.id, owner="elsewhere:1:a"
        )  # the owner learns it lost
        with pytest.raises(RunNotOwnedError):
            await require_run_owner(session, run_id=live.id, owner="elsewhere:1:a")
    _, created = await start(session_factory)
    assert created  # the slot is free again


async def test_a_stale_run_is_replaced_by_the_next_request_and_its_owner_cannot_finish_it(session_factory):
    stale, _ = await start(session_factory, owner="elsewhere:1:a")
    async with session_factory() as session, session.begin():
        row = await session.get(TrainingRun, stale.id)
        row.heartbeat_at = utcnow() - timedelta(hours=1)
    fresh, created = await start(session_factory, owner="me:2:b")
    assert created and fresh.id != stale.id
    with pytest.raises(RunNotOwnedError):
        async with session_factory() as session, session.begin():
            await finish_training_run(
                session, run_id=stale.id, status=RunStatus.SUCCEEDED, owner="elsewhere:1:a"
            )
    async with session_factory() as session, session.begin():
        await finish_training_run(session, run_id=fresh.id, status=RunStatus.REJECTED, owner="me:2:b")


def test_an_owner_process_on_this_host_that_is_gone_makes_its_run_stale_at_once():
    import os
    import socket
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    gone_pid = int(child.stdout)
    host = socket.gethostname()
    run = TrainingRun(active_slot=1, owner=f"{host}:{gone_pid}:x", heartbeat_at=utcnow())
    assert is_stale(run, stale_after=timedelta(hours=1))
    alive = TrainingRun(active_slot=1, owner=f"{host}:{os.getpid()}:x", heartbeat_at=utcnow())
    assert not is_stale(alive, stale_after=timedelta(hours=1))
    remote = TrainingRun(active_slot=1, owner=f"other-host:{gone_pid}:x", heartbeat_at=utcnow())
    assert not is_stale(remote, stale_after=timedelta(hours=1))
