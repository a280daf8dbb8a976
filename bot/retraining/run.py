"""One retraining run, step by step: begin, export the labels, train in a child process, judge, then promote or
reject; whatever ends it early fails it (or, when another process took it over, stops it) and cleans up what it
left. `RetrainingService` (bot.retraining.service) decides when a run starts; `RunExecutor` carries it out.

Transactions: every storage call below runs in its own short `async with session.begin()` block; no session is
held while the trainer runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import storage
from bot.model_store import local_version_path, publish_version
from bot.retraining import texts
from bot.retraining.dataset import (
    HUMAN_HOLDOUT_FILE,
    HUMAN_TRAIN_FILE,
    base_train_config,
    calibration_texts,
    class_mix,
    gate_eval_set,
    human_label_rule,
    human_label_weights,
    split_human_labels,
    write_human_labels_csv,
)
from bot.retraining.process import TrainingProcessError, run_trainer_process, trainer_command
from bot.retraining.reporting import ProgressThrottle, RunReporter
from bot.retraining.run_state import AdminNotifier, Judged, RunData, RunOutcome, RunState
from bot.retraining.scoring import holdout_counts, judge
from bot.retraining.version_files import json_safe, read_id2label, write_metrics
from bot.serving import load_serving_classifier, prepare_model_version, serving_tag
from bot.settings import Settings
from bot.storage import ActivationReason, RunNotOwnedError, RunStatus, Task
from classifier.tasks import TASK_TITLES
from trainer.cli import arguments_for

if TYPE_CHECKING:
    from bot.serving import ServingModel
    from classifier import Classifier

logger = logging.getLogger(__name__)

# A run's last database writes are retried this often (with backoff) when the database is locked.
FINAL_WRITE_ATTEMPTS = 5


class RunExecutor:
    """Carries out runs for one owner (a `RetrainingService`): the steps below, the heartbeat, the reports."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        owner: str,
        servings: dict[Task, ServingModel],
        notify_admins: AdminNotifier | None,
        progress_interval_seconds: float,
    ) -> None:
        self.settings = settings
        self.owner = owner
        self._session_factory = session_factory
        self._servings = servings  # shared with the service: a promoted candidate is swapped in here
        self._notify_admins = notify_admins
        self.progress_interval = progress_interval_seconds
        self.requested_by: dict[int, int | None] = {}  # run id -> the admin to tell about it
        self._lost: set[int] = set()  # runs another process took over

    async def execute(self, run_id: int, task: Task, reporter: RunReporter | None) -> RunOutcome:
        """One run, step by step: begin, export the labels, train, judge, then promote or reject. Whatever ends it
        early fails it (or, when another process took it over, stops it) and cleans up what it left."""
        run = RunState(
            id=run_id,
            task=task,
            progress=ProgressThrottle(self._update_progress, run_id, reporter, self.progress_interval),
            dir=(self.settings.runs_dir / f"run-{run_id}").resolve(),
        )
        heartbeat = asyncio.create_task(
            self._beat(run_id, asyncio.current_task()), name=f"heartbeat-{run_id}"
        )
        try:
            await self._begin(run)
            data = await self._export_labels(run)
            base = await self._train(run, data)
            judged = await self._judge_candidate(run, data)
            outcome = await self._promote_or_reject(run, data, base, judged)
        except asyncio.CancelledError:
            if run_id not in self._lost:
                await self._fail(run_id, texts.INTERRUPTED, reporter, run.candidate_dir, run.version_id)
                raise
            return await self._lost_run(run_id, reporter, run.candidate_dir, run.version_id)
        except RunNotOwnedError:
            return await self._lost_run(run_id, reporter, run.candidate_dir, run.version_id)
        except TrainingProcessError as error:
            return await self._fail(run_id, str(error), reporter, run.candidate_dir, run.version_id)
        except Exception as error:
            logger.exception("retraining run %s failed", run_id)
            return await self._fail(
                run_id, f"{type(error).__name__}: {error}", reporter, run.candidate_dir, run.version_id
            )
        finally:
            heartbeat.cancel()
            shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
        logger.info("retraining run %s %s: %s", run_id, outcome.status, judged.decision.reason)
        await self.announce(run_id, outcome.summary, reporter)
        await self._prune_rejected()
        return outcome

    async def _begin(self, run: RunState) -> None:
        """Mark the run running, with its log and its seed: fresh base rows every run (a retry too)."""
        run.dir.mkdir(parents=True, exist_ok=True)
        run.seed = (
            secrets.randbelow(2**31 - 1)
            if self.settings.retrain_seed is None
            else self.settings.retrain_seed + run.id
        )
        async with self._session_factory() as session, session.begin():
            await storage.mark_run_running(
                session, run_id=run.id, log_path=str(run.log_path), seed=run.seed, owner=self.owner
            )

    async def _export_labels(self, run: RunState) -> RunData:
        """Read the active model and the human labels; split, weight and write them for the trainer (the held-out
        slice for the gate); fetch the gate's fixed evaluation set."""
        async with self._session_factory() as session:
            active = await storage.get_active_model_version(session, task=run.task)
            labels = await storage.export_human_labels(
                session, **human_label_rule(self.settings), task=run.task
            )
            served = await storage.served_versions(session, task=run.task)
        id2label = await self._active_labels(active, run.task)
        split = split_human_labels(labels, holdout_fraction=self.settings.correction_holdout_fraction)
        weights = human_label_weights(
            [example.label for example in split.train],
            average_weight=self.settings.correction_weight,
            balance=self.settings.correction_balance,
        )
        mix = class_mix(split.train, weights, id2label)
        logger.info("run %s: human labels %s", run.id, texts.label_mix_text(mix))
        await run.progress.report(
            texts.EXPORTING.format(
                train=len(split.train), holdout=len(split.holdout), mix=texts.label_mix_text(mix)
            ),
            force=True,
        )
        extra = None
        if split.train:
            extra = write_human_labels_csv(run.dir / HUMAN_TRAIN_FILE, split.train, id2label, weights)
        if split.holdout:
            write_human_labels_csv(run.dir / HUMAN_HOLDOUT_FILE, split.holdout, id2label)
        eval_set = await asyncio.to_thread(gate_eval_set, self.settings, run.task)
        return RunData(active, served, id2label, split, mix, extra, eval_set)

    async def _train(self, run: RunState, data: RunData) -> str:
        """Train the candidate in a child process (from the active model or the base checkpoint, as configured),
        never on the gate's evaluation set. Returns the checkpoint trained from."""
        active = data.active
        base = (
            str(local_version_path(active.path, self.settings).resolve())
            if (self.settings.retrain_from == "active" and active is not None)
            else self.settings.base_model_of(run.task)
        )
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run.candidate_dir = (self.settings.model_dir / f"run-{run.id}-{stamp}").resolve()
        config = base_train_config(
            self.settings,
            output=run.candidate_dir,
            base=base,
            extra=data.extra,
            seed=run.seed,
            exclude=data.eval_set.path,
            checkpoint_dir=run.checkpoint_dir,
            task=run.task,
        )
        await run.progress.report(texts.TRAINING_STARTED.format(base=base), force=True)
        await run_trainer_process(
            trainer_command(arguments_for(config)), log_path=run.log_path, on_event=run.progress.on_event
        )
        return base

    async def _judge_candidate(self, run: RunState, data: RunData) -> Judged:
        """Prepare the candidate as the bot would serve it, score it against the active model and the reference,
        and store the gate's full record in its metrics.json."""
        assert run.candidate_dir is not None
        await run.progress.report(texts.EVALUATING, force=True)
        # Builds whatever serving needs (once, now) and proves the candidate predicts finite probabilities.
        candidate = await asyncio.to_thread(
            prepare_model_version,
            run.candidate_dir,
            self.settings,
            calibration_texts=functools.partial(calibration_texts, self.settings, task=run.task),
        )
        decision = await asyncio.to_thread(
            functools.partial(
                judge,
                settings=self.settings,
                load_active_classifier=functools.partial(self._active_classifier, task=run.task),
            ),
            candidate,
            data.active,
            data.served,
            data.eval_set,
            data.split,
            data.id2label,
        )
        gate = {
            **decision.record(),
            "tolerance_points": self.settings.promotion_tolerance,
            "confidence": self.settings.gate_confidence,
            "serving": serving_tag(self.settings),
            "eval_set": data.eval_set.identity,
            "task": str(run.task),
            "seed": run.seed,
            "human_labels": {
                "train": data.mix,
                "holdout": holdout_counts(data.split.holdout, data.id2label),
            },
        }
        metrics = {**(candidate.metrics or {}), "gate": gate}
        await asyncio.to_thread(write_metrics, run.candidate_dir, metrics)
        return Judged(candidate, decision, gate, metrics)

    async def _promote_or_reject(self, run: RunState, data: RunData, base: str, judged: Judged) -> RunOutcome:
        """Register the candidate, then activate or reject it and end the run in one transaction; swap a promoted
        candidate into serving."""
        assert run.candidate_dir is not None
        decision, gate = judged.decision, judged.gate
        train_rows = (judged.candidate.metrics or {}).get("data", {}).get("train_size")
        if decision.promote:  # every host must be able to read it before the database names it active
            await asyncio.to_thread(publish_version, run.candidate_dir, self.settings)
        async with self._session_factory() as session, session.begin():
            version = await storage.register_model_version(
                session,
                path=str(run.candidate_dir),
                base_checkpoint=base,
                metrics=json_safe(judged.metrics),
                task=run.task,
            )
            run.version_id = version_id = version.id
        status = RunStatus.SUCCEEDED if decision.promote else RunStatus.REJECTED
        summary = texts.decided_summary(
            run_id=run.id,
            task_title=TASK_TITLES[run.task],
            promoted=decision.promote,
            version_id=version_id,
            gate=gate,
        )

        async def finish(session: AsyncSession) -> None:
            # Ownership, activation and the run's end in ONE transaction: a run another process declared
            # abandoned can never make its candidate active.
            await storage.require_run_owner(session, run_id=run.id, owner=self.owner)
            if decision.promote:
                await storage.activate_model_version(
                    session,
                    version_id=version_id,
                    reason=ActivationReason.PROMOTION,
                    note=f"run #{run.id}",
                )
            else:
                await storage.reject_model_version(session, version_id=version_id, reason=decision.reason)
            # Both outcomes consumed these labels: the schedule waits for new ones either way.
            await storage.mark_feedback_used(session, feedback_ids=data.split.feedback_ids, run_id=run.id)
            await storage.finish_training_run(
                session,
                run_id=run.id,
                status=status,
                model_version_id=version_id,
                example_count=train_rows,
                correction_count=len(data.split.train) + len(data.split.holdout),
                gate=json_safe(gate),
                owner=self.owner,
            )

        await self._write_with_retries(finish)
        serving = self._servings.get(run.task)
        if decision.promote and serving is not None:
            # New predictions use the new model from here on; batches already running finish on the old one.
            serving.swap(judged.candidate, version_id)
        return RunOutcome(
            run_id=run.id,
            status=status,
            summary=summary,
            model_version_id=version_id,
            decision=decision,
            gate=gate,
        )

    async def _beat(self, run_id: int, executor: asyncio.Task[Any] | None) -> None:
        """Write the run's heartbeat; when another process has taken the run over, stop the executor."""
        while True:
            await asyncio.sleep(self.settings.run_heartbeat_seconds)
            try:
                async with self._session_factory() as session, session.begin():
                    still_ours = await storage.heartbeat_run(session, run_id=run_id, owner=self.owner)
            except Exception as error:  # noqa: BLE001 - a locked database: try again next beat
                logger.warning("heartbeat of run %s failed: %s", run_id, type(error).__name__)
                continue
            if not still_ours:
                logger.error("run %s was taken over by another process; stopping its trainer", run_id)
                self._lost.add(run_id)
                if executor is not None:
                    executor.cancel()
                return

    async def _write_with_retries(self, write: Callable[[AsyncSession], Awaitable[None]]) -> None:
        """A run's last write, retried with backoff while the database is locked (SQLite's busy timeout
        already waits 30 s per try), so a long lock does not leave the record disagreeing with the outcome."""
        for attempt in range(1, FINAL_WRITE_ATTEMPTS + 1):
            try:
                async with self._session_factory() as session, session.begin():
                    await write(session)
                return
            except OperationalError as error:
                if attempt == FINAL_WRITE_ATTEMPTS:
                    raise
                delay = min(2.0**attempt, 30.0)
                logger.warning("database busy (%s); retrying in %.0f s", type(error.orig).__name__, delay)
                await asyncio.sleep(delay)

    async def _fail(
        self,
        run_id: int,
        error: str,
        reporter: RunReporter | None,
        candidate_dir: Path | None,
        version_id: int | None,
    ) -> RunOutcome:
        logger.warning("retraining run %s failed: %s", run_id, error.splitlines()[0] if error else "")

        async def write(session: AsyncSession) -> None:
            if version_id is not None:
                await storage.reject_model_version(
                    session, version_id=version_id, reason=f"run failed: {error[:200]}"
                )
            await storage.finish_training_run(
                session, run_id=run_id, status=RunStatus.FAILED, error=error, owner=self.owner
            )

        recorded = True
        try:
            await self._write_with_retries(write)
        except RunNotOwnedError:
            pass  # another process already ended it (it was declared abandoned)
        except Exception:
            recorded = False
            logger.exception(
                "could not mark retraining run %s failed; it is swept as abandoned after %.0f s",
                run_id,
                self.settings.run_stale_seconds,
            )
        if version_id is None and candidate_dir is not None and candidate_dir.exists():
            shutil.rmtree(candidate_dir, ignore_errors=True)  # an unregistered candidate is of no use
        summary = texts.failed_summary(run_id=run_id, error=error)
        if not recorded:
            summary += "\n" + texts.FAILED_NOT_RECORDED
        await self.announce(run_id, summary, reporter)
        return RunOutcome(run_id=run_id, status=RunStatus.FAILED, summary=summary, error=error)

    async def fail_unstarted(self, run_id: int, error: str, reporter: RunReporter | None) -> RunOutcome:
        """End a run that never started (it could not be handed to a training worker)."""
        return await self._fail(run_id, error, reporter, None, None)

    async def _lost_run(
        self, run_id: int, reporter: RunReporter | None, candidate_dir: Path | None, version_id: int | None
    ) -> RunOutcome:
        """Another process declared this run abandoned and failed it: stop, promote nothing, clean up."""
        logger.error("retraining run %s: %s", run_id, texts.LOST_OWNERSHIP)
        if version_id is not None:
            try:
                async with self._session_factory() as session, session.begin():
                    await storage.reject_model_version(
                        session, version_id=version_id, reason=texts.LOST_OWNERSHIP
                    )
            except Exception:
                logger.exception("could not mark model version %s rejected", version_id)
        elif candidate_dir is not None and candidate_dir.exists():
            shutil.rmtree(candidate_dir, ignore_errors=True)
        summary = texts.failed_summary(run_id=run_id, error=texts.LOST_OWNERSHIP)
        await self.announce(run_id, summary, reporter)
        return RunOutcome(run_id=run_id, status=RunStatus.FAILED, summary=summary, error=texts.LOST_OWNERSHIP)

    async def _prune_rejected(self) -> None:
        """Keep the files of the newest `KEEP_REJECTED_VERSIONS` rejected candidates; delete older ones."""
        model_dir = self.settings.model_dir.resolve()
        try:
            async with self._session_factory() as session, session.begin():
                for version in await storage.prunable_rejected_versions(
                    session, keep=self.settings.keep_rejected_versions
                ):
                    path = Path(version.path).resolve()
                    if path.is_relative_to(model_dir):  # never delete what an admin imported from elsewhere
                        await asyncio.to_thread(shutil.rmtree, path, True)
                    await storage.mark_version_pruned(session, version_id=version.id)
                    logger.info("deleted the files of rejected model version %s (%s)", version.id, path)
        except Exception:
            logger.exception("pruning rejected model versions failed")

    async def announce(self, run_id: int, summary: str, reporter: RunReporter | None) -> None:
        if reporter is not None:
            try:
                await reporter.finished(run_id, summary)
            except Exception:
                logger.exception("reporting the end of run %s failed", run_id)
        if self._notify_admins is not None:
            try:
                await self._notify_admins(summary, self.requested_by.get(run_id))
            except Exception:
                logger.exception("notifying admins about run %s failed", run_id)

    async def _update_progress(self, run_id: int, text: str, reporter: RunReporter | None) -> None:
        async with self._session_factory() as session, session.begin():
            await storage.update_run_progress(session, run_id=run_id, progress=text[:200])
        if reporter is not None:
            await reporter.progress(run_id, text)

    # --- models -----------------------------------------------------------------------------------

    def _served_classifier(self, active: Any, task: Task) -> Classifier | None:
        """The task's serving model when it is `active`'s version."""
        serving = self._servings.get(task)
        if serving is not None and serving.is_loaded and serving.active.version_id == active.id:
            return serving.active.classifier
        return None

    def _active_classifier(self, active: Any, *, task: Task) -> Classifier:
        """The active model as the bot serves it: the serving one when it is that version, else loaded the same
        way from its directory. Blocking."""
        served = self._served_classifier(active, task)
        return served if served is not None else load_serving_classifier(active.path, self.settings)

    async def _active_labels(self, active: Any, task: Task) -> dict[int, str] | None:
        """Label names of the active model, read from its config (so human labels are written as names)."""
        if active is None:
            return None
        served = self._served_classifier(active, task)
        if served is not None:
            return dict(served.id2label)
        return await asyncio.to_thread(lambda: read_id2label(local_version_path(active.path, self.settings)))
