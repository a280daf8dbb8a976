"""The PostgreSQL job queue (procrastinate): training runs as jobs on the `training` queue, executed by
`moderator worker` on any host (the GPU host). Only the bot's adapters and the worker command import this
package; the retraining use case sees a `dispatch` callable (bot.retraining.service). See docs/cluster.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.retraining.service import RunDispatcher
    from bot.settings import Settings


def training_dispatcher(settings: Settings) -> RunDispatcher | None:
    """Where `RetrainingService` sends runs: None (train in this process) unless TRAINING_EXECUTOR=worker, then
    the PostgreSQL job queue. Raises a clear error when the database is not PostgreSQL."""
    if settings.training_executor != "worker":
        return None
    from bot.jobs.queue import JobQueue

    return JobQueue(settings.database_url).dispatch_training
