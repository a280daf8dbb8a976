"""TRAINING_EXECUTOR=worker: the bot queues runs on PostgreSQL and `moderator worker` processes train them.

Real processes and real signals on the PostgreSQL server `.ci/postgres.sh` starts: two workers started at the same
moment, one run trained by exactly one of them and served by the bot, a run handed out twice executed once, and a
worker SIGKILLed mid-training whose run the bot fails at once, never promoting it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime

import pytest
from retraining_helpers import RecordingReporter, activate_version, add_corrections, make_settings, wait_for
from sqlalchemy import text
from test_run_recovery import trainers_of

from bench.reliability import record
from bot.jobs.queue import TRAIN_MODEL_TASK, JobQueue, build_app
from bot.retraining import texts as retraining_texts
from bot.retraining.service import RetrainingService
from bot.serving import ServingModel
from bot.storage import (
    RunStatus,
    RunTrigger,
    Task,
    create_engine,
    get_active_model_version,
    get_training_run,
    list_model_versions,
    list_training_runs,
    make_session_factory,
    upgrade_database,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# The gate is not what these tests are about: whatever a short run trains, it is promoted.
LENIENT_GATE = {
    "promotion_tolerance": 100.0,
    "promotion_class_tolerance": 100.0,
    "calibration_tolerance": 100.0,
    "gate_eval_size": 1000,
}


def worker_environment(settings, korpora_root, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "TRAINING_EXECUTOR": "worker",
        "MODEL_DIR": str(settings.model_dir),
        "RUNS_DIR": str(settings.runs_dir),
        "KORPORA_ROOT": str(korpora_root),
        "RETRAIN_TRAIN_SIZE": str(settings.retrain_train_size),
        "RETRAIN_EVAL_SIZE": str(settings.retrain_eval_size),
        "RETRAIN_EPOCHS": str(settings.retrain_epochs),
        "RETRAIN_BATCH_SIZE": "32",
        "RETRAIN_LEARNING_RATE": "5e-4",
        "CORRECTION_NEIGHBOURS": "0",
        "PROMOTION_TOLERANCE": str(settings.promotion_tolerance),
        "PROMOTION_CLASS_TOLERANCE": str(settings.promotion_class_tolerance),
        "RETRAIN_SEED": str(settings.retrain_seed),
        "CALIBRATION_TOLERANCE": str(settings.calibration_tolerance),
        "GATE_EVAL_SIZE": str(settings.gate_eval_size),
        "RUN_HEARTBEAT_SECONDS": "0.5",
        "QUANTIZE": "false",
        "RETRAIN_CRON": "",
        **extra,
    }


async def start_worker(tmp_path, name: str, environment: dict[str, str]) -> asyncio.subprocess.Process:
    # The child writes it; our copy of the descriptor is closed once the child has it.
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: ASYNC230, SIM115 - a local file, opened once
    with log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "worker", cwd=tmp_path, env=environment, stdout=log, stderr=log
        )


async def stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()
    return process.returncode


@pytest.fixture
async def worker_database(postgres_url, tmp_path, korpora_root, scratch_model_dir):
    """(settings, session_factory, the active version's id) on a fresh, migrated PostgreSQL database whose
    active model is the scratch model."""
    await asyncio.to_thread(upgrade_database, postgres_url)
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        training_executor="worker",
        korpora_root=korpora_root,
        correction_neighbours=0,
        retrain_epochs=1.0,
        **LENIENT_GATE,
    )
    engine = create_engine(postgres_url)
    session_factory = make_session_factory(engine)
    yield settings, session_factory, await activate_version(session_factory, scratch_model_dir)
    await engine.dispose()


def bot_following_workers(
    settings, session_factory, model_dir, version_id: int, **options
) -> tuple[ServingModel, RetrainingService]:
    """A bot's serving model (on `version_id`) and its retraining service, which hands runs to the workers."""
    from classifier import Classifier

    serving = ServingModel(Classifier.load(model_dir), version_id)
    service = RetrainingService(
        settings=settings,
        session_factory=session_factory,
        serving=serving,
        progress_interval_seconds=0.5,
        dispatch=JobQueue(settings.database_url).dispatch_training,
        **options,
    )
    return serving, service


async def run_in_training(service: RetrainingService) -> tuple[int, RecordingReporter]:
    """Ask for a run and wait until a worker is training it; (run id, its reporter)."""
    reporter = RecordingReporter()
    run_id, created = await service.request_run(
        trigger=RunTrigger.ADMIN, requested_by=None, reporter=reporter
    )
    assert created
    await asyncio.wait_for(reporter.training_started.wait(), 300)
    return run_id, reporter


async def serving_changes(serving: ServingModel, version_id: int) -> datetime:
    """When `serving` stops answering with `version_id` (UTC)."""
    while serving.active.version_id == version_id:
        await asyncio.sleep(0.02)
    return datetime.now(UTC)


async def registered_workers(session_factory) -> int:
    async with session_factory() as session:
        return await session.scalar(text("SELECT count(*) FROM procrastinate_workers"))


async def test_two_workers_one_run_executed_once_and_served_by_the_bot(
    tmp_path, worker_database, scratch_model_dir, korpora_root
):
    settings, session_factory, first_version = worker_database
    environment = worker_environment(settings, korpora_root)
    workers = await ready_workers(tmp_path, ["worker-1", "worker-2"], environment, session_factory)
    try:
        notices: list[str] = []

        async def notify_admins(summary: str, requested_by: int | None) -> None:
            notices.append(summary)

        serving, service = bot_following_workers(
            settings, session_factory, scratch_model_dir, first_version, notify_admins=notify_admins
        )
        # A second bot process's service: it did not ask for the run and learns of the promotion by its sync job.
        other_serving, other_bot = bot_following_workers(
            settings.model_copy(update={"model_sync_seconds": 1.0}),
            session_factory,
            scratch_model_dir,
            first_version,
        )
        await other_bot.start()
        # When each bot starts serving something new (watched from here, every 20 ms).
        swaps = {
            name: asyncio.create_task(serving_changes(model, first_version))
            for name, model in (("requesting_bot", serving), ("other_bot", other_serving))
        }
        reporter = RecordingReporter()
        requested_at = time.monotonic()
        run_id, created = await service.request_run(
            trigger=RunTrigger.ADMIN, requested_by=7, reporter=reporter
        )
        assert created

        async def claimed():
            async with session_factory() as session:
                run = await get_training_run(session, run_id=run_id)
            return run if run.owner else None

        claimed_run = await wait_for(claimed, timeout=60, interval=0.05)
        claim_seconds = time.monotonic() - requested_at
        outcome = await asyncio.wait_for(service.wait_for_run(run_id), 300)
        served_seconds = time.monotonic() - requested_at
        assert outcome.status is RunStatus.SUCCEEDED, outcome.summary
        # The bot trained nothing: the run's owner is one of the two workers, and only that one says it claimed it.
        owner_pid = int(claimed_run.owner.split(":")[1])
        assert owner_pid in {worker.pid for worker in workers} and owner_pid != os.getpid()
        logs = {worker.pid: (tmp_path / f"worker-{i}.log") for i, worker in zip((1, 2), workers, strict=True)}
        claims = {pid: log.read_text().count(f"training run {run_id} of the") for pid, log in logs.items()}
        assert claims == {pid: int(pid == owner_pid) for pid in logs}, claims
        # The bot serves the promoted version, and said so once, to the requester and to the admins.
        assert serving.active.version_id == outcome.model_version_id != first_version
        assert reporter.finished_texts == notices == [outcome.summary]
        # Both bots serve it; how long after the worker's promotion (the run's end, in the database's clock).
        swapped = {name: await asyncio.wait_for(task, 30) for name, task in swaps.items()}
        assert other_serving.active.version_id == outcome.model_version_id
        await other_bot.stop()
        async with session_factory() as session:
            promoted_at = (await get_training_run(session, run_id=run_id)).finished_at
        serving_after = {name: (at - promoted_at).total_seconds() for name, at in swapped.items()}
        assert all(seconds >= -0.5 for seconds in serving_after.values()), serving_after  # clocks agree
        # Progress came through: the follower relays the row's progress line as it finds it every 0.5 s, so it
        # may skip a line the worker replaced sooner (training steps, throttled to one per 3 s, last about a second
        # in this short run), but not the step lines that stand for seconds: the trainer starting up, the gate.
        assert reporter.progress_texts[0] == retraining_texts.QUEUED_FOR_WORKER.format(run_id=run_id)
        steps = {retraining_texts.TRAINING_STARTED.split(" (")[0], retraining_texts.EVALUATING}
        assert any(text.split(" (")[0] in steps for text in reporter.progress_texts), reporter.progress_texts

        # The same run handed out again (a retried job): a worker takes the job and executes nothing.
        app = build_app(settings.database_url, pool_size=1)
        async with app.open_async():
            duplicate = await app.tasks[TRAIN_MODEL_TASK].defer_async(
                run_id=run_id, task=Task.SENTIMENT.value
            )

        async def duplicate_done():
            async with session_factory() as session:
                status = await session.scalar(
                    text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": duplicate}
                )
            return status in (None, "succeeded")  # successful jobs are deleted

        await wait_for(duplicate_done, timeout=60, interval=0.1)
        async with session_factory() as session:
            run = await get_training_run(session, run_id=run_id)
            versions = await list_model_versions(session)
        assert run.status is RunStatus.SUCCEEDED and run.model_version_id == outcome.model_version_id
        assert sorted(version.id for version in versions) == [first_version, outcome.model_version_id]
        assert sum(log.read_text().count("no longer waits for a worker") for log in logs.values()) == 1
        record(
            "training_worker",
            workers=2,
            runs=1,
            executions=sum(claims.values()),
            duplicate_job_executions=0,
            request_to_claim_seconds=round(claim_seconds, 2),
            request_to_served_seconds=round(served_seconds, 1),
            # The requesting bot swaps when its follower sees the end (it polls every 0.5 s here); the other bot
            # at its next model sync (MODEL_SYNC_SECONDS=1 here, 30 by default).
            promotion_to_serving_seconds={name: round(value, 2) for name, value in serving_after.items()},
        )
    finally:
        codes = [await stop(worker) for worker in workers]
    assert codes == [0, 0]  # SIGTERM stops an idle worker cleanly


async def ready_workers(
    tmp_path, names: list[str], environment: dict[str, str], session_factory
) -> list[asyncio.subprocess.Process]:
    """Start a worker per name at the same moment; return once all of them are registered (killing them if not)."""
    workers = await asyncio.gather(*(start_worker(tmp_path, name, environment) for name in names))

    async def all_registered() -> bool:
        return await registered_workers(session_factory) >= len(names)

    try:
        await wait_for(all_registered, timeout=120, interval=0.2)
    except BaseException:
        for worker in workers:
            worker.kill()
            await worker.wait()
        raise
    return workers


async def test_a_worker_killed_mid_training_fails_its_run_and_never_promotes(
    tmp_path, worker_database, scratch_model_dir, korpora_root
):
    settings, session_factory, first_version, worker = await one_worker(
        tmp_path, worker_database, korpora_root, train_size=4000, epochs=5.0
    )
    try:
        serving, service = bot_following_workers(settings, session_factory, scratch_model_dir, first_version)
        run_id, reporter = await run_in_training(service)
        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await worker.wait()
        # The bot's periodic sweep (the sync job) sees the owner process is gone and fails the run at once; the
        # bot's follower then reports the end.
        assert await service.sweep() == 1
        outcome = await asyncio.wait_for(service.wait_for_run(run_id), 30)
        reported_after = time.monotonic() - killed_at
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert outcome.status is RunStatus.FAILED and outcome.error.startswith("abandoned"), outcome
    assert reporter.finished_texts == [outcome.summary] and "실패" in outcome.summary
    async with session_factory() as session:
        active = await get_active_model_version(session)
        versions = await list_model_versions(session)
    assert active.id == first_version and [version.id for version in versions] == [first_version]
    assert serving.active.version_id == first_version
    # The killed worker's trainer child died with it (PR_SET_PDEATHSIG): nothing trains on.
    assert not trainers_of(tmp_path)

    # The killed worker's job is still `doing` in procrastinate's table. Once that worker is stalled (no
    # heartbeat for STALLED_WORKER_SECONDS; aged here rather than waited for), the next worker marks it failed.
    async def job_status() -> str:
        async with session_factory() as session:
            return await session.scalar(
                text("SELECT status FROM procrastinate_jobs WHERE args->>'run_id' = :run"),
                {"run": str(run_id)},
            )

    assert await job_status() == "doing"
    async with session_factory() as session, session.begin():
        await session.execute(
            text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'")
        )
    next_worker = await start_worker(tmp_path, "next-worker", worker_environment(settings, korpora_root))
    try:
        await wait_for(lambda: _job_is(job_status, "failed"), timeout=120, interval=0.2)
    finally:
        assert await stop(next_worker) == 0
    record("training_worker_sigkill", runs_promoted=0, reported_seconds_after_kill=round(reported_after, 2))


async def one_worker(tmp_path, worker_database, korpora_root, *, train_size: int, epochs: float):
    """(settings for runs of `train_size` rows and `epochs`, session factory, first version, one ready worker)."""
    settings, session_factory, first_version = worker_database
    settings = settings.model_copy(update={"retrain_train_size": train_size, "retrain_epochs": epochs})
    [worker] = await ready_workers(
        tmp_path, ["worker"], worker_environment(settings, korpora_root), session_factory
    )
    return settings, session_factory, first_version, worker


async def _job_is(job_status, wanted: str) -> bool:
    return await job_status() == wanted


async def test_a_run_no_worker_takes_fails_with_a_clear_reason(tmp_path, worker_database):
    settings, session_factory, _ = worker_database
    settings = settings.model_copy(update={"run_stale_seconds": 1.0})
    service = RetrainingService(
        settings=settings,
        session_factory=session_factory,
        progress_interval_seconds=0.2,
        dispatch=JobQueue(settings.database_url).dispatch_training,
    )
    run_id, created = await service.request_run(trigger=RunTrigger.ADMIN, requested_by=None)
    assert created
    await asyncio.sleep(1.5)
    assert await service.sweep() == 1
    outcome = await asyncio.wait_for(service.wait_for_run(run_id), 10)
    assert outcome.status is RunStatus.FAILED
    assert "no training worker took it" in outcome.error and "moderator worker" in outcome.error


async def test_two_bots_schedules_firing_at_once_start_one_run(tmp_path, worker_database):
    """Each bot process has its own APScheduler; on PostgreSQL their retraining ticks may fire at the same moment.
    The database's one-live-run rule lets one of them start the run; the other skips it."""
    settings, session_factory, version_id = worker_database
    examples = [(f"리뷰 {i}번은 사실 좋았어요", 1) for i in range(6)]
    await add_corrections(session_factory, examples, trusted=True, model_version_id=version_id)
    settings = settings.model_copy(update={"retrain_min_new_feedback": len(examples)})
    bots = [
        RetrainingService(
            settings=settings,
            session_factory=session_factory,
            progress_interval_seconds=0.2,
            dispatch=JobQueue(settings.database_url).dispatch_training,
        )
        for _ in range(2)
    ]
    try:
        started = await asyncio.gather(*(bot.run_if_enough_feedback() for bot in bots))
        assert sorted(started, key=lambda run_id: run_id is None)[1:] == [None], started
        run_id = next(run_id for run_id in started if run_id is not None)

        async def jobs() -> int:
            async with session_factory() as session:
                return await session.scalar(text("SELECT count(*) FROM procrastinate_jobs"))

        await wait_for(
            lambda: _one(jobs), timeout=30, interval=0.05
        )  # the run's job, deferred by its follower
        # The next ticks, while that run waits for a worker: nothing more starts.
        assert await asyncio.gather(*(bot.run_if_enough_feedback() for bot in bots)) == [None, None]
        await asyncio.sleep(0.5)
        async with session_factory() as session:
            runs = await list_training_runs(session, limit=10)
        assert [(run.id, run.trigger) for run in runs] == [(run_id, RunTrigger.SCHEDULE)]
        assert await jobs() == 1  # one job handed to the workers
    finally:
        for bot in bots:
            await bot.stop()


async def _one(count) -> bool:
    return await count() == 1


async def test_worker_mode_needs_postgresql(tmp_path):
    from bot.jobs import training_dispatcher
    from bot.storage import StorageError

    settings = make_settings(tmp_path, training_executor="worker")  # SQLite
    with pytest.raises(StorageError, match="TRAINING_EXECUTOR=worker needs PostgreSQL"):
        training_dispatcher(settings)


async def test_postgresql_restarted_during_a_run_the_run_finishes_and_is_served(
    tmp_path, worker_database, scratch_model_dir, korpora_root
):

    server_dir = os.environ.get("PG_CI_DIR")  # set by .ci/postgres.sh's pg_start, which `.ci/run` calls
    if not server_dir:
        if os.environ.get("CI"):
            pytest.fail("PG_CI_DIR is not set: this test restarts the server .ci/postgres.sh started")
        pytest.skip("restarting PostgreSQL needs the server .ci/postgres.sh started (PG_CI_DIR)")
    settings, session_factory, first_version, worker = await one_worker(
        tmp_path, worker_database, korpora_root, train_size=2000, epochs=2.0
    )
    try:
        serving, service = bot_following_workers(settings, session_factory, scratch_model_dir, first_version)
        run_id, reporter = await run_in_training(service)
        # The server goes away for 3 s mid-training: every connection of the bot and the worker is cut.
        restart = await asyncio.create_subprocess_exec("bash", ".ci/postgres.sh", "restart", server_dir, "3")
        assert await asyncio.wait_for(restart.wait(), 90) == 0
        outcome = await asyncio.wait_for(service.wait_for_run(run_id), 300)
        assert worker.returncode is None  # the worker lived through it
    finally:
        code = await stop(worker)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.summary
    assert serving.active.version_id == outcome.model_version_id != first_version
    assert reporter.finished_texts == [outcome.summary]
    assert code == 0
    record("training_worker_postgres_restart", postgres_down_seconds=3, run_status=outcome.status.value)


async def test_the_bot_restarted_during_a_workers_run_serves_the_promoted_version(
    tmp_path, worker_database, scratch_model_dir, korpora_root
):
    """The bot that asked stops in the middle of the run (its follower goes with it); the worker finishes, gates
    and promotes the run; the bot's next incarnation, started meanwhile, serves the new version at its model sync
    and never fails the run it did not start."""
    settings, session_factory, first_version, worker = await one_worker(
        tmp_path, worker_database, korpora_root, train_size=2000, epochs=2.0
    )
    try:
        _, first_bot = bot_following_workers(settings, session_factory, scratch_model_dir, first_version)
        run_id, reporter = await run_in_training(first_bot)
        await first_bot.stop()  # the bot process ends: nobody follows the run
        restarted_serving, restarted_bot = bot_following_workers(
            settings.model_copy(update={"model_sync_seconds": 1.0}),
            session_factory,
            scratch_model_dir,
            first_version,
        )
        await restarted_bot.start()
        try:
            assert await restarted_bot.sweep() == 0  # the worker's run is alive: nothing to fail
            await asyncio.wait_for(serving_changes(restarted_serving, first_version), 300)
        finally:
            await restarted_bot.stop()
    finally:
        code = await stop(worker)
    async with session_factory() as session:
        run = await get_training_run(session, run_id=run_id)
        versions = await list_model_versions(session)
        active = await get_active_model_version(session)
    assert run.status is RunStatus.SUCCEEDED and run.model_version_id == active.id != first_version
    assert restarted_serving.active.version_id == active.id
    assert sorted(version.id for version in versions) == [first_version, active.id]  # promoted once
    assert reporter.finished_texts == []  # the process that would have said so was gone
    assert code == 0
    record("training_worker_bot_restart", run_status=run.status.value, served_by_the_restarted_bot=True)
