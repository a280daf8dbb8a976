"""A training worker's use case (TRAINING_EXECUTOR=worker): claim a run a bot queued, then carry it out exactly as
the bot would (`RunExecutor`): export the labels, train in a child process, judge, promote or reject, with the
heartbeat that lets every bot see when the worker is gone. The job queue that delivers run ids is bot.jobs.

Exactly one worker executes a run: the claim is one conditional UPDATE (storage `claim_queued_run`), and a
run handed out twice (a retried job, a second worker) is skipped by whoever loses. A worker killed mid-run
stops beating; the bots' sweep fails the run after RUN_STALE_SECONDS (at once on the same host), and its
candidate can never be promoted (promotion re-checks ownership in the same transaction).
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import storage
from bot.retraining.run import RunExecutor
from bot.retraining.run_state import RunOutcome, new_owner
from bot.settings import Settings
from bot.storage import Task

logger = logging.getLogger(__name__)


class TrainingWorker:
    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        progress_interval_seconds: float = 3.0,
    ) -> None:
        self.owner = new_owner()
        self._session_factory = session_factory
        # A worker serves nothing: a promoted version reaches the bots through the database (their sync job).
        self._executor = RunExecutor(
            settings=settings,
            session_factory=session_factory,
            owner=self.owner,
            servings={},
            notify_admins=None,
            progress_interval_seconds=progress_interval_seconds,
        )

    async def execute(self, run_id: int, task: Task) -> RunOutcome | None:
        """Claim run `run_id` and carry it out; None when it no longer waits for a worker (taken or failed)."""
        async with self._session_factory() as session, session.begin():
            claimed = await storage.claim_queued_run(session, run_id=run_id, owner=self.owner)
        if not claimed:
            logger.info("training run %s no longer waits for a worker (another took it, or it ended)", run_id)
            return None
        logger.info("training run %s of the %s model claimed by %s", run_id, task, self.owner)
        outcome = await self._executor.execute(run_id, Task(task), None)
        logger.info("training run %s ended: %s", run_id, outcome.status)
        return outcome
