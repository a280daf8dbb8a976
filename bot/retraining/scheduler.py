"""The bot's schedule: an APScheduler 3 `AsyncIOScheduler` inside the bot's event loop (started by
`RetrainingService.start` when `moderator run` starts). Its jobs: retraining, the active-model sync and, with
`RETENTION_DAYS`, purging old review texts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.settings import Settings

logger = logging.getLogger(__name__)

RETRAIN_JOB_ID = "retrain"
SYNC_JOB_ID = "sync-active-model"
RETENTION_JOB_ID = "purge-old-texts"
# How often the bot forgets review texts older than RETENTION_DAYS; the first purge comes soon after start-up.
RETENTION_PURGE_SECONDS = 6 * 3600.0
FIRST_RETENTION_PURGE_SECONDS = 60.0

Job = Callable[[], Awaitable[object]]


def build_trigger(settings: Settings) -> BaseTrigger | None:
    """`retrain_interval_seconds` when set, else the `retrain_cron` crontab, else None (no schedule)."""
    if settings.retrain_interval_seconds is not None:
        if settings.retrain_interval_seconds <= 0:
            raise ValueError("RETRAIN_INTERVAL_SECONDS must be positive")
        return IntervalTrigger(seconds=settings.retrain_interval_seconds)
    if settings.retrain_cron:
        try:
            return CronTrigger.from_crontab(settings.retrain_cron)
        except ValueError as error:
            raise ValueError(
                f"RETRAIN_CRON {settings.retrain_cron!r} is not a valid crontab: {error}"
            ) from error
    return None


def start_scheduler(
    settings: Settings,
    *,
    retrain_job: Job,
    sync_job: Job | None = None,
    purge_job: Job | None = None,
) -> AsyncIOScheduler | None:
    """Start a scheduler on the running loop: `retrain_job` on the configured schedule, `sync_job` every
    MODEL_SYNC_SECONDS, `purge_job` `FIRST_RETENTION_PURGE_SECONDS` after the start and then every
    `RETENTION_PURGE_SECONDS`. Returns None when there is nothing to schedule. Call it inside the loop."""
    trigger = build_trigger(settings)
    if trigger is None:
        logger.info("scheduled retraining is disabled (no RETRAIN_CRON or RETRAIN_INTERVAL_SECONDS)")
    if trigger is None and sync_job is None and purge_job is None:
        return None
    scheduler = AsyncIOScheduler()
    # One tick at a time; ticks missed while the bot was busy or down collapse into one.
    job_options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
    if trigger is not None:
        scheduler.add_job(retrain_job, trigger, id=RETRAIN_JOB_ID, **job_options)
        logger.info("scheduled retraining: %s", trigger)
    if sync_job is not None:
        scheduler.add_job(
            sync_job, IntervalTrigger(seconds=settings.model_sync_seconds), id=SYNC_JOB_ID, **job_options
        )
    if purge_job is not None:
        scheduler.add_job(
            purge_job,
            IntervalTrigger(seconds=RETENTION_PURGE_SECONDS),
            id=RETENTION_JOB_ID,
            next_run_time=datetime.now(UTC) + timedelta(seconds=FIRST_RETENTION_PURGE_SECONDS),
            **job_options,
        )
        logger.info("review texts older than RETENTION_DAYS are purged every %.0f s", RETENTION_PURGE_SECONDS)
    scheduler.start()
    return scheduler
