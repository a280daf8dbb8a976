"""`moderator worker`: execute the training runs bots queue on PostgreSQL (TRAINING_EXECUTOR=worker), on this
host, usually the one with the GPU. It needs the same DATABASE_URL, MODEL_DIR and RUNS_DIR as the bots (a shared
volume) and the training data (KORPORA_ROOT or BASE_DATA)."""

from __future__ import annotations

import argparse
import asyncio
import logging

logger = logging.getLogger(__name__)

# procrastinate's worker heartbeat: a worker silent this long is stalled; its unfinished jobs are failed by
# the next worker that starts (their runs were already failed by the bots' sweep).
STALLED_WORKER_SECONDS = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="execute retraining runs queued by the bots (TRAINING_EXECUTOR=worker, PostgreSQL)",
        description=(
            "Wait for training runs on the PostgreSQL job queue and carry each out: export the labels, train, "
            "gate, promote or reject, as the bot does with TRAINING_EXECUTOR=local. Bots serve a promoted "
            "version within seconds. SIGTERM or Ctrl-C stops it; a run it was training is marked failed."
        ),
    )
    parser.set_defaults(func=run_worker_command, needs_torch=True)


def run_worker_command(args: argparse.Namespace) -> int:
    from bot.settings import get_settings

    asyncio.run(run_worker(get_settings()))
    return 0


async def run_worker(settings) -> None:
    from procrastinate.jobs import Status

    from bot.jobs.queue import TRAINING_QUEUE, TRAINING_WORKER, build_app
    from bot.retraining.worker import TrainingWorker
    from bot.storage import create_engine, make_session_factory, upgrade_database

    app = build_app(settings.database_url)  # a clear error unless DATABASE_URL is PostgreSQL
    await asyncio.to_thread(upgrade_database, settings.database_url)
    engine = create_engine(settings.database_url)
    worker = TrainingWorker(settings=settings, session_factory=make_session_factory(engine))
    try:
        async with app.open_async():
            for job in await app.job_manager.get_stalled_jobs(
                queue=TRAINING_QUEUE, seconds_since_heartbeat=STALLED_WORKER_SECONDS
            ):
                logger.warning(
                    "job %s (%s) was left by a worker that stopped; marking it failed",
                    job.id,
                    job.call_string,
                )
                await app.job_manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
            logger.info("training worker %s waiting for runs on the %r queue", worker.owner, TRAINING_QUEUE)
            await app.run_worker_async(
                queues=[TRAINING_QUEUE],
                name=worker.owner,
                concurrency=1,  # one run at a time (the database allows one live run anyway)
                additional_context={TRAINING_WORKER: worker},
                # On SIGTERM a run is not waited for (it takes minutes): it is cancelled, marked failed and its
                # trainer terminated, like the bot's own runs on shutdown.
                shutdown_graceful_timeout=settings.shutdown_timeout_seconds,
                stalled_worker_timeout=STALLED_WORKER_SECONDS,
                delete_jobs="successful",
            )
    finally:
        await engine.dispose()
