"""The retraining service: one run = export human labels, train in a child process, gate, promote or reject.

Triggers: `request_run` (the Telegram `/retrain` command and `moderator retrain`) and the scheduler
(`run_if_enough_feedback`). A run retrains one task's model (sentiment or toxicity) from that task's labels and is
judged on that task's fixed evaluation set. The database allows one queued/running run at a time across processes
and tasks (storage `start_training_run`); a second request gets the running run's id back.

Ownership: each service instance is an owner ("host:pid:nonce"). While it executes a run it writes a heartbeat
every `RUN_HEARTBEAT_SECONDS`; a run whose heartbeat stops for `RUN_STALE_SECONDS` (or whose owner process is
gone) is abandoned, and the next request or the periodic sweep fails it, without a restart. An owner that finds
its run taken over stops its trainer, and promotion happens in the same transaction that checks ownership, so a
failed run's candidate never becomes active. The trainer dies with its owner (PR_SET_PDEATHSIG).

A run itself, step by step, is `bot.retraining.run.RunExecutor`'s.

With TRAINING_EXECUTOR=worker the service trains nothing: it queues the run without an owner, hands it to
`dispatch` (the PostgreSQL job queue, bot.jobs), and follows the run's row: progress to the reporter, the end to
the admins, a promoted version into serving. A training worker (bot.retraining.worker) claims and executes it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import storage
from bot.retraining import texts
from bot.retraining.dataset import human_label_rule
from bot.retraining.reporting import ProgressThrottle, RunReporter
from bot.retraining.run import RunExecutor
from bot.retraining.run_state import AdminNotifier, RunOutcome, new_owner
from bot.serving import load_serving_classifier
from bot.settings import Settings
from bot.storage import RunStatus, RunTrigger, Task
from bot.storage.retention import purge_expired_texts
from classifier.tasks import TASK_TITLES

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.serving import ServingModel

logger = logging.getLogger(__name__)

# Hands a queued run (id, task) to a training worker; raises when it cannot.
RunDispatcher = Callable[[int, Task], Awaitable[None]]


class RetrainingService:
    """Satisfies the bot's `Retrainer` protocol (`request_run`) and adds `start`, `stop` and the sync job."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        serving: ServingModel | None = None,
        notify_admins: AdminNotifier | None = None,
        progress_interval_seconds: float = 3.0,
        toxicity_serving: ServingModel | None = None,
        dispatch: RunDispatcher | None = None,
    ) -> None:
        self.settings = settings
        self._dispatch = dispatch  # None: runs train here, in a child process
        self.owner = new_owner()
        self._session_factory = session_factory
        # What each task serves: a promoted candidate is swapped in there, and the sync job follows the database.
        self._servings: dict[Task, ServingModel] = {
            task: model
            for task, model in ((Task.SENTIMENT, serving), (Task.TOXICITY, toxicity_serving))
            if model is not None
        }
        self._executor = RunExecutor(
            settings=settings,
            session_factory=session_factory,
            owner=self.owner,
            servings=self._servings,
            notify_admins=notify_admins,
            progress_interval_seconds=progress_interval_seconds,
        )
        self._runs: dict[int, asyncio.Task[RunOutcome]] = {}
        self._run_tasks: dict[int, Task] = {}  # the task each run of this process trains
        self._unloadable: set[int] = set()  # versions the sync job could not load (logged once)
        self._scheduler: AsyncIOScheduler | None = None

    @property
    def _stale_after(self) -> timedelta:
        return timedelta(seconds=self.settings.run_stale_seconds)

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the bot's schedule on the running loop (`bot.retraining.scheduler`): retraining when a schedule
        is configured, the active-model sync (or the sweep of abandoned runs), and with RETENTION_DAYS the purge
        of old review texts."""
        from bot.retraining.scheduler import start_scheduler

        await self.sweep()
        if self._scheduler is None:
            self._scheduler = start_scheduler(
                self.settings,
                retrain_job=self.run_if_enough_feedback,
                sync_job=self.sync_serving_with_database if self._servings else self.sweep,
                purge_job=self._retention_job(),
            )

    def _retention_job(self) -> Callable[[], Awaitable[int]] | None:
        """The scheduled purge of review texts older than RETENTION_DAYS (labels stay); None when unset."""
        days = self.settings.retention_days
        if days is None:
            return None

        async def purge() -> int:
            return await purge_expired_texts(self._session_factory, older_than_days=days)

        return purge

    async def stop(self) -> None:
        """Stop the schedule and end any run of this process: its trainer is terminated and the run is
        marked failed ("interrupted by shutdown"); the active model stays as it was."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        tasks = [task for task in self._runs.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- triggers ---------------------------------------------------------------------------------

    async def request_run(
        self,
        *,
        trigger: RunTrigger,
        requested_by: int | None,
        reporter: RunReporter | None = None,
        task: Task = Task.SENTIMENT,
    ) -> tuple[int, bool]:
        """Start a run retraining `task`'s model in the background now; (run id, created). When a live run exists
        (in any process, of any task) nothing starts and its id comes back with created=False; an abandoned one
        is failed and replaced."""
        task = Task(task)
        async with self._session_factory() as session, session.begin():
            run, created = await storage.start_training_run(
                session,
                trigger=trigger,
                requested_by=requested_by,
                owner=self.owner if self._dispatch is None else None,  # a worker claims it
                stale_after=self._stale_after,
                task=task,
            )
            run_id = run.id
        if created:
            logger.info(
                "retraining run %s of the %s model started (trigger %s, requested by %s)",
                run_id,
                task,
                trigger,
                requested_by,
            )
            self._executor.requested_by[run_id] = requested_by
            if self._dispatch is None:
                self._run_tasks[run_id] = task
                run = self._executor.execute(run_id, task, reporter)
            else:
                run = self._hand_to_worker(run_id, task, reporter)
            self._runs[run_id] = asyncio.create_task(run, name=f"retrain-{run_id}")
        return run_id, created

    async def _hand_to_worker(self, run_id: int, task: Task, reporter: RunReporter | None) -> RunOutcome:
        """Queue the run for a training worker, then follow its row until it ends. Cancelling this (the bot
        stops) stops following only: the worker owns the run."""
        assert self._dispatch is not None
        try:
            await self._dispatch(run_id, task)
        except Exception as error:
            logger.exception("could not queue retraining run %s for a training worker", run_id)
            first_line = (str(error).splitlines() or [""])[0]
            message = texts.NOT_QUEUED.format(error=f"{type(error).__name__}: {first_line}")
            return await self._executor.fail_unstarted(run_id, message, reporter)
        return await self._follow_worker_run(run_id, task, reporter)

    async def _follow_worker_run(self, run_id: int, task: Task, reporter: RunReporter | None) -> RunOutcome:
        """Poll the run's row: relay new progress, and when it ends tell the reporter and the admins, and serve a
        promoted version now rather than at the next sync."""
        # The reporter hears the row's progress through the same throttle class as a local run's (best effort: a
        # reporter that fails is logged and the run is still followed to its end); the polling paces it.
        relay = ProgressThrottle(_report_only, run_id, reporter, interval=0.0)
        await relay.report(texts.QUEUED_FOR_WORKER.format(run_id=run_id))
        shown: str | None = None
        while True:
            await asyncio.sleep(self._executor.progress_interval)
            try:
                async with self._session_factory() as session:
                    run = await storage.get_training_run(session, run_id=run_id)
            except Exception as error:  # noqa: BLE001 - a database hiccup: look again next time
                logger.warning("following run %s: %s", run_id, type(error).__name__)
                continue
            if run is None:
                raise RuntimeError(f"training run {run_id} disappeared from the database")
            if run.active_slot is None:  # it ended
                break
            if run.progress and run.progress != shown:
                shown = run.progress
                await relay.report(run.progress)
        if run.status is RunStatus.FAILED:
            summary = texts.failed_summary(run_id=run_id, error=run.error)
        else:
            summary = texts.decided_summary(
                run_id=run_id,
                task_title=TASK_TITLES[task],
                promoted=run.status is RunStatus.SUCCEEDED,
                version_id=run.model_version_id,
                gate=run.gate,
            )
        if run.status is RunStatus.SUCCEEDED and task in self._servings:
            await self._follow_active_version(self._servings[task], task)
        await self._executor.announce(run_id, summary, reporter)
        return RunOutcome(
            run_id=run_id,
            status=run.status,
            summary=summary,
            model_version_id=run.model_version_id,
            error=run.error,
            gate=run.gate,
        )

    async def wait_for_run(self, run_id: int) -> RunOutcome:
        """The outcome of a run started by this service (waits for it to finish)."""
        return await asyncio.shield(self._runs[run_id])

    async def run_if_enough_feedback(self) -> int | None:
        """The scheduled job: start a run of a task that received at least `retrain_min_new_feedback` labels
        since its last run (of the two, the one with more). The other task's turn is the next tick: one run at a
        time. Returns the new run's id, or None when nothing started."""
        async with self._session_factory() as session:
            unused = {
                task: await storage.count_unused_feedback(
                    session, **human_label_rule(self.settings), task=task
                )
                for task in Task
            }
        due = [task for task in Task if unused[task] >= self.settings.retrain_min_new_feedback]
        if not due:
            logger.info(
                "scheduled retraining skipped: new labels %s, need %d",
                ", ".join(f"{task} {count}" for task, count in unused.items()),
                self.settings.retrain_min_new_feedback,
            )
            return None
        task = max(due, key=lambda task: unused[task])
        run_id, created = await self.request_run(
            trigger=RunTrigger.SCHEDULE, requested_by=None, reporter=None, task=task
        )
        if not created:
            logger.info("scheduled retraining skipped: run %s is still in progress", run_id)
        return run_id if created else None

    async def sweep(self) -> int:
        """Fail an abandoned run (its heartbeat stopped) and delete what such runs leave behind: checkpoint
        folders, half-written candidates. A run owned by a live process is left alone. Returns runs failed."""
        async with self._session_factory() as session, session.begin():
            failed = await storage.fail_stale_runs(session, stale_after=self._stale_after)
        if failed:
            logger.warning("marked an abandoned training run as failed (its owner stopped beating)")
        async with self._session_factory() as session:
            live = await storage.get_live_training_run(session)
            versions = await storage.list_model_versions(session, limit=1_000_000)
        if live is None:
            await asyncio.to_thread(
                self._remove_leftovers, {Path(version.path).resolve() for version in versions}
            )
        return failed

    def _remove_leftovers(self, registered: set[Path]) -> None:
        """With no run live: every run's checkpoint folder, and candidate folders no version points at."""
        for folder in self.settings.runs_dir.resolve().glob("run-*/checkpoints"):
            shutil.rmtree(folder, ignore_errors=True)
        model_dir = self.settings.model_dir.resolve()
        for folder in [*model_dir.glob("run-*"), *model_dir.glob(".run-*.partial-*")]:
            if folder.is_dir() and folder.resolve() not in registered:
                logger.info("removing %s, left by an interrupted run", folder)
                shutil.rmtree(folder, ignore_errors=True)

    async def sync_serving_with_database(self) -> bool:
        """The periodic job: sweep abandoned runs, then serve the database's active version if another process
        (`moderator retrain`, `moderator model activate`) changed it. Returns True when a model was swapped in.
        A version that cannot load is reported once and the current model keeps serving."""
        await self.sweep()
        # While this process retrains a task, it swaps that task's model itself.
        training = {self._run_tasks[run_id] for run_id, run in self._runs.items() if not run.done()}
        swapped = False
        for task, serving in self._servings.items():
            if task not in training:
                swapped = await self._follow_active_version(serving, task) or swapped
        return swapped

    async def _follow_active_version(self, serving: ServingModel, task: Task) -> bool:
        async with self._session_factory() as session:
            active = await storage.get_active_model_version(session, task=task)
        current = serving.active.version_id if serving.is_loaded else None
        if active is None or active.id == current or active.id in self._unloadable:
            return False
        logger.info("active %s model changed to version %s in the database; loading it", task, active.id)
        try:
            classifier = await asyncio.to_thread(load_serving_classifier, active.path, self.settings)
        except Exception as error:  # noqa: BLE001 - whatever breaks, keep serving the current model
            self._unloadable.add(active.id)
            logger.error(
                "model version %s, active in the database, cannot load (%s); still serving version %s",
                active.id,
                str(error).splitlines()[0] if str(error) else type(error).__name__,
                current,
            )
            return False
        serving.swap(classifier, active.id)
        return True


async def _report_only(run_id: int, text: str, reporter: RunReporter | None) -> None:
    """A progress update for a run another process executes: its row is the worker's to write."""
    if reporter is not None:
        await reporter.progress(run_id, text)
