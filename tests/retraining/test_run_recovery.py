"""Runs have an owner and a heartbeat: nothing gets stuck, nothing gets stolen, one trainer at a time.

Real processes and real signals: `moderator retrain` is started as a subprocess and SIGKILLed mid-training; the
bot's start-up path runs beside a live `moderator retrain`; and an owner whose run was taken over stops.
The figures of docs/reliability.md are recorded with `bench.reliability.record` (RELIABILITY lines with -s; with
RELIABILITY_RESULTS=path, as `make bench` runs it, the results file bench/results/reliability.json).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import timedelta

import psutil
import pytest
from retraining_helpers import RecordingReporter, activate_version, make_settings, wait_for

from bench.reliability import record
from bot.retraining.service import RetrainingService
from bot.serving import ServingModel
from bot.storage import (
    ModelStatus,
    RunStatus,
    RunTrigger,
    get_active_model_version,
    get_live_training_run,
    get_training_run,
    list_model_versions,
)
from bot.storage.models import TrainingRun, utcnow
from bot.telegram.cli import _prepare_database

LONG_RUN = {"retrain_train_size": 4000, "retrain_epochs": 5}


def trainers_of(folder) -> list[psutil.Process]:
    """Live `python -m trainer` processes writing under `folder` (this test's own), wherever they hang in the
    process tree: an orphaned trainer counts too."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "-m" in cmdline and "trainer" in cmdline and any(str(folder) in part for part in cmdline):
            found.append(process)
    return found


def environment(settings, korpora_root) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "MODEL_DIR": str(settings.model_dir),
        "RUNS_DIR": str(settings.runs_dir),
        "KORPORA_ROOT": str(korpora_root),
        "RETRAIN_TRAIN_SIZE": "4000",
        "RETRAIN_EVAL_SIZE": "300",
        "RETRAIN_EPOCHS": "5",
        "RETRAIN_BATCH_SIZE": "32",
        "RETRAIN_LEARNING_RATE": "5e-4",
        "RUN_HEARTBEAT_SECONDS": "0.5",
        "QUANTIZE": "false",
        "RETRAIN_CRON": "",
    }


@pytest.mark.slow
async def test_sigkill_of_moderator_retrain_frees_the_run_without_a_restart(
    tmp_path, session_factory, scratch_model_dir, korpora_root
):
    settings = make_settings(tmp_path, korpora_root=korpora_root, **LONG_RUN)
    first_version = await activate_version(session_factory, scratch_model_dir)
    retrain = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "retrain",
        cwd=tmp_path,
        env=environment(settings, korpora_root),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def training() -> TrainingRun | None:
            async with session_factory() as session:
                run = await get_live_training_run(session)
            log = settings.runs_dir / f"run-{run.id}" / "train.log" if run else None
            if (
                run
                and run.status is RunStatus.RUNNING
                and log.exists()
                and '"event": "progress"' in log.read_text()
            ):
                return run
            return None

        run = await wait_for(training, timeout=300, interval=0.5)
        assert len(trainers_of(tmp_path)) == 1

        # The bot starting now (its start-up path) must leave the live run of another process alone ...
        active = await _prepare_database(settings)
        assert active.version_id == first_version
        service = RetrainingService(settings=settings, session_factory=session_factory)
        again, created = await service.request_run(trigger=RunTrigger.ADMIN, requested_by=1)
        assert (again, created) == (run.id, False)  # ... and one trainer only
        assert len(trainers_of(tmp_path)) == 1

        killed_at = time.monotonic()
        retrain.send_signal(signal.SIGKILL)
        await asyncio.wait_for(retrain.wait(), 30)

        async def trainer_gone() -> bool:
            return not trainers_of(tmp_path)

        await wait_for(
            trainer_gone, timeout=30, interval=0.05
        )  # the trainer dies with its owner, never orphaned
        trainer_gone_after = time.monotonic() - killed_at
        async with session_factory() as session:
            assert (await get_training_run(session, run_id=run.id)).status is RunStatus.RUNNING  # as left

        # No restart: the next request sees the owner is gone, fails the run and starts a new one.
        reporter = RecordingReporter()
        requested_at = time.monotonic()
        new_run, created = await service.request_run(
            trigger=RunTrigger.ADMIN, requested_by=1, reporter=reporter
        )
        takeover = time.monotonic() - requested_at
        assert created and new_run != run.id
        await asyncio.wait_for(reporter.training_started.wait(), 300)
        trainers = len(trainers_of(tmp_path))
        record(
            "retrain_sigkill",
            trainer_gone_seconds_after_kill=round(trainer_gone_after, 2),
            takeover_seconds=round(takeover, 2),  # the next request failed the abandoned run and started one
            trainers_while_running=trainers,
        )
        assert trainers == 1
        await service.stop()
    finally:
        if retrain.returncode is None:
            retrain.kill()
            await retrain.wait()
    async with session_factory() as session:
        killed = await get_training_run(session, run_id=run.id)
        replaced = await get_training_run(session, run_id=new_run)
        versions = await list_model_versions(session)
        active = await get_active_model_version(session)
    assert killed.status is RunStatus.FAILED and killed.error.startswith("abandoned")
    assert replaced.status is RunStatus.FAILED and replaced.error == "interrupted by shutdown"
    assert [version.id for version in versions] == [first_version] and active.id == first_version
    assert not trainers_of(tmp_path)
    # Nothing left behind: the killed run's checkpoints and half-written candidate are gone.
    await service.sweep()
    checkpoints_left = list(settings.runs_dir.glob("run-*/checkpoints"))
    candidates_left = list(settings.model_dir.glob("*run-*"))
    record(
        "killed_run_leftovers",
        killed_run_status=killed.status.value,
        versions_registered=len(versions),
        checkpoint_folders_left_after_sweep=len(checkpoints_left),
        candidate_folders_left_after_sweep=len(candidates_left),
    )
    assert not checkpoints_left and not candidates_left


@pytest.mark.slow
async def test_an_owner_whose_run_was_taken_over_stops_and_never_promotes(
    tmp_path, session_factory, scratch_model_dir, scratch_classifier_for_runs, korpora_root
):
    first_version = await activate_version(session_factory, scratch_model_dir)
    serving = ServingModel(scratch_classifier_for_runs, first_version)
    settings = make_settings(tmp_path, korpora_root=korpora_root, run_heartbeat_seconds=0.3, **LONG_RUN)
    service = RetrainingService(settings=settings, session_factory=session_factory, serving=serving)
    reporter = RecordingReporter()
    run_id, _ = await service.request_run(trigger=RunTrigger.ADMIN, requested_by=1, reporter=reporter)
    await asyncio.wait_for(reporter.training_started.wait(), 300)

    # Another process decides the run is abandoned (say its heartbeats were lost) and fails it.
    async with session_factory() as session, session.begin():
        run = await session.get(TrainingRun, run_id)
        run.status, run.active_slot, run.finished_at = RunStatus.FAILED, None, utcnow()
        run.error = "abandoned: declared stale by another process"
    started = time.monotonic()
    outcome = await asyncio.wait_for(service.wait_for_run(run_id), 60)

    stopped_after = time.monotonic() - started
    assert outcome.status is RunStatus.FAILED and "abandoned by another process" in outcome.error
    assert stopped_after < 30 and not trainers_of(tmp_path)  # it stopped its trainer
    record(
        "taken_over",
        owner_stopped_trainer_seconds=round(stopped_after, 2),
        status=outcome.status.value,
        trainers_left=len(trainers_of(tmp_path)),
    )
    assert serving.active.version_id == first_version
    async with session_factory() as session:
        active = await get_active_model_version(session)
        run = await get_training_run(session, run_id=run_id)
        candidates = [v for v in await list_model_versions(session) if v.id != first_version]
    assert active.id == first_version and run.error == "abandoned: declared stale by another process"
    assert all(version.status is not ModelStatus.ACTIVE for version in candidates)
    await service.stop()


@pytest.fixture
def scratch_classifier_for_runs(scratch_model_dir):
    from classifier import Classifier

    return Classifier.load(scratch_model_dir)


async def test_a_run_without_heartbeat_on_another_host_is_swept_by_the_periodic_job(
    tmp_path, session_factory, scratch_model_dir
):
    await activate_version(session_factory, scratch_model_dir)
    settings = make_settings(tmp_path, run_stale_seconds=60)
    async with session_factory() as session, session.begin():
        session.add(
            TrainingRun(
                trigger=RunTrigger.CLI,
                status=RunStatus.RUNNING,
                active_slot=1,
                owner="some-other-host:123:abc",
                heartbeat_at=utcnow() - timedelta(seconds=61),
            )
        )
    (settings.runs_dir / "run-1" / "checkpoints").mkdir(parents=True)
    service = RetrainingService(settings=settings, session_factory=session_factory)
    assert await service.sweep() == 1
    async with session_factory() as session:
        run = await get_training_run(session, run_id=1)
    assert run.status is RunStatus.FAILED and "some-other-host:123:abc" in run.error
    assert not (settings.runs_dir / "run-1" / "checkpoints").exists()
    record(
        "stale_run_swept",
        run_stale_seconds=60,
        heartbeat_age_seconds=61,
        status=run.status.value,
        checkpoints_left=(settings.runs_dir / "run-1" / "checkpoints").exists(),
    )
