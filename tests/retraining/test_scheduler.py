"""The retraining schedule: triggers from settings, and a real AsyncIOScheduler job honouring the threshold."""

from __future__ import annotations

import asyncio
import logging

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from retraining_helpers import REVIEWER, add_corrections, make_settings, wait_for

from bot.retraining.scheduler import build_trigger, start_scheduler
from bot.retraining.service import RetrainingService
from bot.storage import RunStatus, RunTrigger, list_training_runs, record_feedback


def test_trigger_comes_from_cron_or_interval(tmp_path):
    cron = build_trigger(make_settings(tmp_path, retrain_cron="30 3 * * 1"))
    assert isinstance(cron, CronTrigger)
    assert str(cron.fields[cron.FIELD_NAMES.index("hour")]) == "3"
    interval = build_trigger(make_settings(tmp_path, retrain_cron="30 3 * * 1", retrain_interval_seconds=90))
    assert isinstance(interval, IntervalTrigger) and interval.interval.total_seconds() == 90
    assert build_trigger(make_settings(tmp_path, retrain_cron="")) is None
    with pytest.raises(ValueError, match="not a valid crontab"):
        build_trigger(make_settings(tmp_path, retrain_cron="every night"))


async def test_scheduler_calls_the_job_repeatedly(tmp_path):
    ticks = asyncio.Queue()

    async def job():
        ticks.put_nowait(1)

    scheduler = start_scheduler(make_settings(tmp_path, retrain_interval_seconds=0.2), retrain_job=job)
    try:
        for _ in range(3):
            await asyncio.wait_for(ticks.get(), 30)
    finally:
        scheduler.shutdown(wait=False)


async def test_scheduled_job_starts_a_run_only_after_enough_new_corrections(
    tmp_path, session_factory, caplog, korpora_root
):
    caplog.set_level(logging.INFO, logger="bot.retraining.service")
    settings = make_settings(
        tmp_path,
        retrain_interval_seconds=0.3,
        retrain_min_new_feedback=4,
        retrain_from="base",
        korpora_root=korpora_root,
        base_model=str(
            tmp_path / "no-such-checkpoint"
        ),  # the run itself may fail; the trigger is what counts
    )
    service = RetrainingService(settings=settings, session_factory=session_factory)

    def skipped(count: int) -> int:
        needed = f"skipped: new labels sentiment {count}, toxicity 0, need 4"
        return sum(needed in r.getMessage() for r in caplog.records)

    async def runs():
        async with session_factory() as session:
            return await list_training_runs(session)

    await service.start()
    try:
        await wait_for(lambda: _async(skipped(0) >= 2))
        # Two unchecked users' corrections wait for a reviewer: they do not count towards the threshold.
        (waiting,) = await add_corrections(session_factory, [("첫 번째 보정 리뷰", 1)])
        await wait_for(lambda: _async(skipped(0) >= 4))
        # A reviewer settles that review (3 labels of it count now), then labels another one: 4.
        async with session_factory() as session, session.begin():
            await record_feedback(
                session,
                verdict_id=waiting,
                user_id=REVIEWER,
                label=1,
                num_labels=2,
                is_admin=False,
                trusted=True,
            )
        await wait_for(lambda: _async(skipped(3) >= 2))
        assert await runs() == []  # ticks fired, threshold not met: nothing started

        await add_corrections(
            session_factory, [("두 번째 보정 리뷰", 0)], users=(REVIEWER,), trusted=True, first_message_id=100
        )
        started = await wait_for(runs)
        assert len(started) == 1 and started[0].trigger is RunTrigger.SCHEDULE
    finally:
        await service.stop()
    (run,) = await runs()
    assert run.status is RunStatus.FAILED  # no such checkpoint, or interrupted by the stop
    assert run.finished_at is not None


async def _async(value):
    return value
