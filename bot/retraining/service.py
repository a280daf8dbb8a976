"""The retraining service: one run = export data, train in a child process, gate, promote or reject.

Triggers: `request_run` (the Telegram `/retrain` command and `moderator retrain`) and the scheduler
(`run_if_enough_feedback`). The database allows one queued/running run at a time across processes
(storage `start_training_run`); a second request gets the running run's id back.

Transactions: every storage call below runs in its own short `async with session.begin()` block;
no session is held while the trainer runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import storage
from bot.retraining import texts
from bot.retraining.dataset import (
    CORRECTIONS_HOLDOUT_FILE,
    CORRECTIONS_TRAIN_FILE,
    CorrectionExample,
    base_train_config,
    load_base_evaluation,
    split_corrections,
    write_corrections_csv,
)
from bot.retraining.gate import GateDecision, ModelScores, decide_promotion
from bot.retraining.process import TrainingProcessError, run_trainer_process, trainer_command
from bot.settings import Settings
from bot.storage import RunStatus, RunTrigger
from trainer.cli import arguments_for

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.serving import ServingModel
    from classifier import Classifier

logger = logging.getLogger(__name__)

# (summary, id of the admin who requested the run or None): tells the admins about a finished run.
AdminNotifier = Callable[[str, int | None], Awaitable[None]]


class RunReporter(Protocol):
    """Where a run's progress and result go (the Telegram layer edits one message; the CLI prints)."""

    async def progress(self, run_id: int, text: str) -> None: ...

    async def finished(self, run_id: int, text: str) -> None: ...


class RollbackError(Exception):
    """Rolling back is impossible (no previous version); the message is user-presentable Korean."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    status: RunStatus
    summary: str  # what the reporter's `finished` received
    model_version_id: int | None = None
    decision: GateDecision | None = None
    candidate: ModelScores | None = None
    active: ModelScores | None = None
    error: str | None = None


class RetrainingService:
    """Satisfies the bot's `Retrainer` protocol (`request_run`) and adds `rollback`, `start` and `stop`."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        serving: ServingModel | None = None,
        notify_admins: AdminNotifier | None = None,
        progress_interval_seconds: float = 3.0,
    ) -> None:
        self.settings = settings
        self._session_factory = session_factory
        self._serving = serving
        self._notify_admins = notify_admins
        self._progress_interval = progress_interval_seconds
        self._runs: dict[int, asyncio.Task[RunOutcome]] = {}
        self._requested_by: dict[int, int | None] = {}
        self._scheduler: AsyncIOScheduler | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the retraining schedule on the running loop (a no-op when no schedule is configured)."""
        from bot.retraining.scheduler import start_scheduler

        if self._scheduler is None:
            self._scheduler = start_scheduler(
                self.settings,
                retrain_job=self.run_if_enough_feedback,
                sync_job=self.sync_serving_with_database if self._serving is not None else None,
            )

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
        self, *, trigger: RunTrigger, requested_by: int | None, reporter: RunReporter | None = None
    ) -> tuple[int, bool]:
        """Start a run in the background now; (run id, created). When a run is already queued or
        running (in any process) nothing starts and its id comes back with created=False."""
        async with self._session_factory() as session, session.begin():
            run, created = await storage.start_training_run(
                session, trigger=trigger, requested_by=requested_by
            )
            run_id = run.id
        if created:
            logger.info(
                "retraining run %s started (trigger %s, requested by %s)", run_id, trigger, requested_by
            )
            self._requested_by[run_id] = requested_by
            self._runs[run_id] = asyncio.create_task(
                self._execute(run_id, reporter), name=f"retrain-{run_id}"
            )
        return run_id, created

    async def wait_for_run(self, run_id: int) -> RunOutcome:
        """The outcome of a run started by this service (waits for it to finish)."""
        return await asyncio.shield(self._runs[run_id])

    async def run_if_enough_feedback(self) -> int | None:
        """The scheduled job: start a run when at least `retrain_min_new_feedback` corrections arrived
        since the last run. Returns the new run's id, or None when nothing started."""
        async with self._session_factory() as session:
            unused = await storage.count_unused_feedback(
                session, require_agreement=not self.settings.trust_feedback
            )
        if unused < self.settings.retrain_min_new_feedback:
            logger.info(
                "scheduled retraining skipped: %d new correction(s), need %d",
                unused,
                self.settings.retrain_min_new_feedback,
            )
            return None
        run_id, created = await self.request_run(
            trigger=RunTrigger.SCHEDULE, requested_by=None, reporter=None
        )
        if not created:
            logger.info("scheduled retraining skipped: run %s is still in progress", run_id)
        return run_id if created else None

    async def sync_serving_with_database(self) -> bool:
        """Serve the database's active version if another process (`moderator retrain`, `moderator model
        activate`) changed it. Returns True when a new model was swapped in."""
        if self._serving is None:
            return False
        if any(not task.done() for task in self._runs.values()):
            return False  # this process is promoting; it swaps itself
        async with self._session_factory() as session:
            active = await storage.get_active_model_version(session)
        current = self._serving.active.version_id if self._serving.is_loaded else None
        if active is None or active.id == current:
            return False
        logger.info("active model changed to version %s in the database; loading it", active.id)
        classifier = await self._load_classifier(active.path, quantize=self.settings.quantize)
        self._serving.swap(classifier, active.id)
        return True

    async def rollback(self) -> Any:
        """Activate the previously active version and swap it into serving; returns that ModelVersion."""
        async with self._session_factory() as session:
            previous = await storage.previous_model_version(session)
        if previous is None:
            raise RollbackError(texts.NO_PREVIOUS_VERSION)
        # Load first: a broken directory must not leave the database pointing at it.
        classifier = await self._load_classifier(previous.path, quantize=self.settings.quantize)
        async with self._session_factory() as session, session.begin():
            version = await storage.activate_model_version(session, version_id=previous.id)
        if self._serving is not None:
            self._serving.swap(classifier, version.id)
        logger.info("rolled back to model version %s", version.id)
        return version

    # --- one run ----------------------------------------------------------------------------------

    async def _execute(self, run_id: int, reporter: RunReporter | None) -> RunOutcome:
        run_dir = (self.settings.runs_dir / f"run-{run_id}").resolve()
        log_path = run_dir / "train.log"
        candidate_dir: Path | None = None
        registered = False
        progress = _ProgressReporter(self, run_id, reporter, self._progress_interval)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            async with self._session_factory() as session, session.begin():
                await storage.mark_run_running(session, run_id=run_id, log_path=str(log_path))
            async with self._session_factory() as session:
                active = await storage.get_active_model_version(session)
                corrections = await storage.export_corrections(
                    session, require_agreement=not self.settings.trust_feedback
                )
            active_labels = await self._active_labels(active)
            split = split_corrections(corrections, holdout_fraction=self.settings.correction_holdout_fraction)
            await progress.report(
                texts.EXPORTING.format(corrections=len(split.train), holdout=len(split.holdout)), force=True
            )
            extra = None
            if split.train:
                extra = write_corrections_csv(run_dir / CORRECTIONS_TRAIN_FILE, split.train, active_labels)
            if split.holdout:
                write_corrections_csv(run_dir / CORRECTIONS_HOLDOUT_FILE, split.holdout, active_labels)

            base = (
                str(Path(active.path).resolve())
                if (self.settings.retrain_from == "active" and active is not None)
                else self.settings.base_model
            )
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            candidate_dir = (self.settings.model_dir / f"run-{run_id}-{stamp}").resolve()
            config = base_train_config(self.settings, output=candidate_dir, base=base, extra=extra)

            await progress.report(texts.TRAINING_STARTED.format(base=base), force=True)
            await run_trainer_process(
                trainer_command(arguments_for(config)), log_path=log_path, on_event=progress.on_event
            )

            await progress.report(texts.EVALUATING, force=True)
            candidate_classifier = await self._load_classifier(candidate_dir)
            active_classifier = await self._active_classifier(active)
            candidate_scores, active_scores = await asyncio.to_thread(
                _score_models, config, split.holdout, candidate_classifier, active_classifier
            )
            decision = decide_promotion(
                candidate=candidate_scores,
                active=active_scores,
                tolerance_points=self.settings.promotion_tolerance,
                num_labels=len(candidate_classifier.id2label),
            )
            metrics = {
                **(candidate_classifier.metrics or {}),
                "gate": _gate_record(decision, candidate_scores, active_scores, active),
            }
            train_rows = (candidate_classifier.metrics or {}).get("data", {}).get("train_size")

            async with self._session_factory() as session, session.begin():
                version = await storage.register_model_version(
                    session, path=str(candidate_dir), base_checkpoint=base, metrics=_json_safe(metrics)
                )
                version_id = version.id
            registered = True
            table = texts.scores_table(
                active=active_scores,
                active_version=active.id if active is not None else None,
                candidate=candidate_scores,
                candidate_version=version_id,
            )
            if decision.promote:
                serving_classifier = (
                    await self._load_classifier(candidate_dir, quantize=True)
                    if self.settings.quantize
                    else candidate_classifier
                )
                async with self._session_factory() as session, session.begin():
                    await storage.activate_model_version(session, version_id=version_id)
                # New predictions use the new model from here on; batches already running finish on the old one.
                if self._serving is not None:
                    self._serving.swap(serving_classifier, version_id)
                status = RunStatus.SUCCEEDED
                summary = texts.PROMOTED.format(
                    run_id=run_id, new_version=version_id, table=table, reason=decision.reason
                )
            else:
                async with self._session_factory() as session, session.begin():
                    await storage.reject_model_version(session, version_id=version_id, reason=decision.reason)
                status = RunStatus.REJECTED
                summary = texts.REJECTED.format(
                    run_id=run_id, new_version=version_id, table=table, reason=decision.reason
                )
            async with self._session_factory() as session, session.begin():
                # Both outcomes consumed these corrections: the schedule waits for new ones either way.
                await storage.mark_feedback_used(session, feedback_ids=split.feedback_ids, run_id=run_id)
                await storage.finish_training_run(
                    session,
                    run_id=run_id,
                    status=status,
                    model_version_id=version_id,
                    example_count=train_rows,
                    correction_count=len(split.train) + len(split.holdout),
                )
            outcome = RunOutcome(
                run_id=run_id,
                status=status,
                summary=summary,
                model_version_id=version_id,
                decision=decision,
                candidate=candidate_scores,
                active=active_scores,
            )
        except asyncio.CancelledError:
            await self._fail(run_id, texts.INTERRUPTED, reporter, candidate_dir if not registered else None)
            raise
        except TrainingProcessError as error:
            outcome = await self._fail(
                run_id, str(error), reporter, candidate_dir if not registered else None
            )
            return outcome
        except Exception as error:
            logger.exception("retraining run %s failed", run_id)
            outcome = await self._fail(
                run_id,
                f"{type(error).__name__}: {error}",
                reporter,
                candidate_dir if not registered else None,
            )
            return outcome
        logger.info("retraining run %s %s: %s", run_id, outcome.status, outcome.decision)
        await self._announce(run_id, outcome.summary, reporter)
        return outcome

    async def _fail(
        self, run_id: int, error: str, reporter: RunReporter | None, candidate_dir: Path | None
    ) -> RunOutcome:
        logger.warning("retraining run %s failed: %s", run_id, error)
        if candidate_dir is not None and candidate_dir.exists():
            shutil.rmtree(candidate_dir, ignore_errors=True)  # an unregistered candidate is of no use
        try:
            async with self._session_factory() as session, session.begin():
                await storage.finish_training_run(
                    session, run_id=run_id, status=RunStatus.FAILED, error=error
                )
        except Exception:  # the run stays "running"; fail_stale_runs at the next start-up clears it
            logger.exception("could not mark retraining run %s failed", run_id)
        summary = texts.FAILED.format(run_id=run_id, error=error[-1500:])
        await self._announce(run_id, summary, reporter)
        return RunOutcome(run_id=run_id, status=RunStatus.FAILED, summary=summary, error=error)

    async def _announce(self, run_id: int, summary: str, reporter: RunReporter | None) -> None:
        if reporter is not None:
            try:
                await reporter.finished(run_id, summary)
            except Exception:
                logger.exception("reporting the end of run %s failed", run_id)
        if self._notify_admins is not None:
            try:
                await self._notify_admins(summary, self._requested_by.get(run_id))
            except Exception:
                logger.exception("notifying admins about run %s failed", run_id)

    async def _update_progress(self, run_id: int, text: str, reporter: RunReporter | None) -> None:
        async with self._session_factory() as session, session.begin():
            await storage.update_run_progress(session, run_id=run_id, progress=text[:200])
        if reporter is not None:
            await reporter.progress(run_id, text)

    # --- models -----------------------------------------------------------------------------------

    async def _load_classifier(self, path: str | Path, *, quantize: bool = False) -> Classifier:
        from classifier import Classifier

        return await asyncio.to_thread(Classifier.load, Path(path), quantize=quantize)

    async def _active_classifier(self, active: Any) -> Classifier | None:
        """The active model, unquantized: the serving one when it is that version and full precision,
        else loaded from its directory (the gate compares both models by the same code)."""
        if active is None:
            return None
        if self._serving is not None and self._serving.is_loaded:
            serving = self._serving.active
            if serving.version_id == active.id and not getattr(serving.classifier, "quantized", False):
                return serving.classifier
        return await self._load_classifier(active.path)

    async def _active_labels(self, active: Any) -> dict[int, str] | None:
        """Label names of the active model, read from its config (so corrections are written as names)."""
        if active is None:
            return None
        if (
            self._serving is not None
            and self._serving.is_loaded
            and self._serving.active.version_id == active.id
        ):
            return dict(self._serving.active.classifier.id2label)
        return await asyncio.to_thread(_read_id2label, Path(active.path))


class _ProgressReporter:
    """Throttles progress: the database row and the reporter hear at most one update per interval."""

    def __init__(
        self, service: RetrainingService, run_id: int, reporter: RunReporter | None, interval: float
    ):
        self._service = service
        self._run_id = run_id
        self._reporter = reporter
        self._interval = interval
        self._last_sent = -math.inf

    async def report(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sent < self._interval:
            return
        self._last_sent = now
        try:
            await self._service._update_progress(self._run_id, text, self._reporter)
        except Exception:  # progress is best effort; the run goes on
            logger.exception("progress update for run %s failed", self._run_id)

    async def on_event(self, event: dict[str, Any]) -> None:
        text = texts.progress_text(event)
        if text is not None:
            await self.report(text, force=event.get("event") == "eval")


def _score_models(
    config: Any,
    holdout: list[CorrectionExample],
    candidate: Classifier,
    active: Classifier | None,
) -> tuple[ModelScores, ModelScores | None]:
    """Both models on the trainer's own base evaluation examples and on the held-out corrections. Blocking."""
    from classifier import evaluate

    base_texts, base_labels, id2label = load_base_evaluation(config)
    # Evaluate by label *name*, so each model's own ids are used (the gate rejects differing label sets).
    base_names = [id2label[label] for label in base_labels]

    def scores(model: Classifier) -> ModelScores:
        base = evaluate(model, base_texts, base_names)
        holdout_accuracy = None
        if holdout:
            holdout_accuracy = evaluate(model, [c.text for c in holdout], [c.label for c in holdout])[
                "accuracy"
            ]
        return ModelScores(
            base_accuracy=base["accuracy"],
            holdout_accuracy=holdout_accuracy,
            base_macro_f1=base["macro_f1"],
            labels=tuple(model.id2label[i] for i in sorted(model.id2label)),
        )

    return scores(candidate), (scores(active) if active is not None else None)


def _read_id2label(path: Path) -> dict[int, str] | None:
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        return {int(key): str(value) for key, value in config["id2label"].items()}
    except (OSError, ValueError, KeyError):
        return None


def _gate_record(
    decision: GateDecision, candidate: ModelScores, active: ModelScores | None, active_version: Any
) -> dict[str, Any]:
    return {
        "promote": decision.promote,
        "reason": decision.reason,
        "candidate": {
            "base_accuracy": candidate.base_accuracy,
            "holdout_accuracy": candidate.holdout_accuracy,
        },
        "active_version_id": active_version.id if active_version is not None else None,
        "active": None
        if active is None
        else {"base_accuracy": active.base_accuracy, "holdout_accuracy": active.holdout_accuracy},
    }


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; store them as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value
