"""The procrastinate app: one task, `train_model`, on the `training` queue. The bot defers it (`JobQueue`);
`moderator worker` runs it (bot.jobs.worker_cli) through the worker's `TrainingWorker`."""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import App, JobContext, PsycopgConnector

from bot.storage import StorageError, Task, parse_database_url

logger = logging.getLogger(__name__)

TRAINING_QUEUE = "training"
TRAIN_MODEL_TASK = "moderator.train_model"
# The worker's `additional_context` key for its TrainingWorker.
TRAINING_WORKER = "training_worker"


def job_queue_conninfo(database_url: str) -> str:
    """The libpq URL procrastinate (psycopg 3) connects with; a clear error unless the database is PostgreSQL."""
    url = parse_database_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise StorageError(
            "TRAINING_EXECUTOR=worker needs PostgreSQL: the job queue lives in the database. Set DATABASE_URL to "
            "a postgresql:// URL, or TRAINING_EXECUTOR=local to train in the bot's own process."
        )
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def build_app(database_url: str, *, pool_size: int = 2) -> App:
    connector = PsycopgConnector(conninfo=job_queue_conninfo(database_url), min_size=1, max_size=pool_size)
    app = App(connector=connector)

    @app.task(name=TRAIN_MODEL_TASK, queue=TRAINING_QUEUE, pass_context=True)
    async def train_model(context: JobContext, run_id: int, task: str) -> None:
        worker: Any = context.additional_context[TRAINING_WORKER]
        await worker.execute(run_id, Task(task))

    return app


class JobQueue:
    """The bot's side: `dispatch_training` is the retraining service's `RunDispatcher`. Each call opens its own
    short-lived pool, so a PostgreSQL restart between runs costs nothing."""

    def __init__(self, database_url: str) -> None:
        job_queue_conninfo(database_url)  # fail at start, not at the first /retrain
        self._database_url = database_url

    async def dispatch_training(self, run_id: int, task: Task) -> None:
        app = build_app(self._database_url, pool_size=1)
        async with app.open_async():
            job_id = await app.tasks[TRAIN_MODEL_TASK].defer_async(run_id=run_id, task=Task(task).value)
        logger.info("training run %s queued for a worker as job %s", run_id, job_id)
