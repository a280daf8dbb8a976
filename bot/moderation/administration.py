"""Information for everyone (`/stats`, `/model`) and the admins' commands (`/runs`, `/retrain`, `/rollback`,
`/void`, and activating a version from the web app); every admin command checks who asks."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import storage, versions
from bot.moderation import texts
from bot.moderation.context import UseCaseContext
from bot.moderation.replies import Actor, Reply, friendly_errors, parse_id
from bot.retraining.texts import gate_summary
from bot.storage import ActivationReason, RunTrigger, Task
from bot.storage.models import LIVE_RUN_STATUSES
from bot.textclip import clip
from classifier.tasks import SENTIMENT, TASK_TITLES, parse_task

if TYPE_CHECKING:
    from bot.retraining.reporting import RunReporter

logger = logging.getLogger("bot.moderation")


class Administration(UseCaseContext):
    @friendly_errors
    async def stats(self) -> Reply:
        async with self._transaction() as session:
            numbers = await storage.get_stats(session)
            backlog = await storage.label_backlog(session, rule=self.label_rule)
            active = await storage.get_active_model_version(session)
        by_label = "".join(
            texts.STATS_BY_LABEL_LINE.format(label=label, count=count)
            for label, count in sorted(numbers.verdicts_by_label.items())
        )
        return Reply(
            texts.STATS.format(
                verdicts=numbers.verdicts,
                corrections=numbers.corrections,
                confirmations=numbers.confirmations,
                review_labels=numbers.review_labels,
                corrected_verdicts=numbers.corrected_verdicts,
                corrected_share=100.0 * numbers.corrected_share,
                waiting=backlog.waiting,
                not_counting=backlog.not_counting,
                by_label=by_label,
                model=_describe_model(active),
            )
        )

    @friendly_errors
    async def model_info(self) -> Reply:
        async with self._transaction() as session:
            active = await storage.get_active_model_version(session)
            toxicity = await storage.get_active_model_version(session, task=Task.TOXICITY)
        text = texts.MODEL_INFO_HEADER + _describe_model(active)
        served = self.serving.active.version_id if self.serving.is_loaded else None
        if active is not None and served is not None and served != active.id:
            text += "\n" + texts.MODEL_SERVING_OTHER.format(served=served, active=active.id)
        text += (
            "\n"
            + texts.TOXICITY_MODEL_INFO_HEADER
            + (_describe_model(toxicity) if toxicity is not None else texts.TOXICITY_MODEL_NONE)
        )
        return Reply(text)

    def _refuse(self, actor: Actor, command: str) -> Reply:
        logger.warning("non-admin user %s tried /%s", actor.user_id, command)
        return Reply(texts.ADMIN_ONLY)

    @friendly_errors
    async def runs(self, *, actor: Actor) -> Reply:
        if not actor.is_admin:
            return self._refuse(actor, "runs")
        async with self._transaction() as session:
            runs = await storage.list_training_runs(session, limit=10)
        if not runs:
            return Reply(texts.RUNS_NONE)
        lines = [texts.RUNS_HEADER]
        for run in runs:
            lines.append(
                texts.RUN_LINE.format(
                    id=run.id,
                    task=TASK_TITLES.get(_value(run.task), _value(run.task)),
                    status=texts.RUN_STATUS.get(_value(run.status), _value(run.status)),
                    trigger=texts.RUN_TRIGGER.get(_value(run.trigger), _value(run.trigger)),
                    created=_when(run.created_at),
                    details=_run_details(run),
                )
            )
        return Reply("\n".join(lines))

    @friendly_errors
    async def retrain(
        self, *, actor: Actor, trigger: RunTrigger, reporter: RunReporter | None, argument: str = ""
    ) -> Reply:
        """`/retrain` retrains the sentiment model, `/retrain 표현` (or `toxicity`) the toxicity model."""
        if not actor.is_admin:
            return self._refuse(actor, "retrain")
        named = parse_task(argument) if argument.strip() else SENTIMENT
        if named is None:
            return Reply(texts.RETRAIN_USAGE)
        task = Task(named)
        if self.retrainer is not None:
            run_id, created = await self.retrainer.request_run(
                trigger=trigger, requested_by=actor.user_id, reporter=reporter, task=task
            )
        else:
            async with self._transaction() as session:
                run, created = await storage.start_training_run(
                    session, trigger=trigger, requested_by=actor.user_id, task=task
                )
                run_id = run.id
        template = texts.RETRAIN_QUEUED if created else texts.RETRAIN_ALREADY
        return Reply(template.format(run_id=run_id, task=TASK_TITLES[task]), run_id=run_id)

    @friendly_errors
    async def rollback(self, *, actor: Actor, argument: str = "") -> Reply:
        """Back to the version that served before, through the activation history (see `bot.versions`):
        `/rollback` for the sentiment model, `/rollback 표현` for the toxicity model."""
        if not actor.is_admin:
            return self._refuse(actor, "rollback")
        named = parse_task(argument) if argument.strip() else SENTIMENT
        if named is None:
            return Reply(texts.ROLLBACK_USAGE)
        task = Task(named)
        serving = self._serving_of(task)
        try:
            done = await versions.rollback(
                self.session_factory, self.settings, actor=actor.user_id, task=task
            )
        except versions.VersionError as exc:
            if not exc.skipped:
                return Reply(texts.ROLLBACK_NONE)
            skipped = ", ".join(f"#{version_id}" for version_id, _ in exc.skipped)
            return Reply(texts.ROLLBACK_NONE + "\n" + texts.ROLLBACK_SKIPPED.format(skipped=skipped))
        if serving:
            serving.swap(done.classifier, done.version.id)
        logger.info("admin %s rolled back the %s model to version %s", actor.user_id, task, done.version.id)
        text = texts.ROLLBACK_DONE.format(
            task=TASK_TITLES[task], old=done.previous_id or "-", new=done.version.id
        )
        if done.skipped:
            text += "\n" + texts.ROLLBACK_SKIPPED.format(
                skipped=", ".join(f"#{version_id}" for version_id, _ in done.skipped)
            )
        return Reply(text)

    @friendly_errors
    async def activate_version(self, *, actor: Actor, version_id: int) -> Reply:
        """Make a version its task's active one through the path `moderator model activate` takes (load as served,
        trial prediction, then the database), and serve it here at once, as `/rollback` does."""
        if not actor.is_admin:
            return self._refuse(actor, "activate")
        try:
            done = await versions.activate(
                self.session_factory,
                self.settings,
                version_id=version_id,
                reason=ActivationReason.MANUAL,
                actor=actor.user_id,
                note="web",
            )
        except versions.VersionError as exc:
            return Reply(texts.MODEL_CANNOT_ACTIVATE.format(id=version_id, reason=exc))
        if done.previous_id == done.version.id:
            return Reply(texts.MODEL_ALREADY_ACTIVE.format(id=version_id))
        task = Task(done.version.task)
        serving = self._serving_of(task)
        if serving is not None:
            serving.swap(done.classifier, done.version.id)
        logger.info("admin %s activated %s model version %s", actor.user_id, task, done.version.id)
        return Reply(
            texts.MODEL_ACTIVATED.format(
                task=TASK_TITLES[task], old=done.previous_id or "-", new=done.version.id
            )
        )

    def _serving_of(self, task: Task):  # -> ServingModel | None
        return self.serving if task is Task.SENTIMENT else self.toxicity and self.toxicity.serving

    @friendly_errors
    async def void(self, *, actor: Actor, argument: str) -> Reply:
        if not actor.is_admin:
            return self._refuse(actor, "void")
        user_id = parse_id(argument)
        if user_id is None:
            return Reply(texts.VOID_USAGE)
        async with self._transaction() as session:
            count = await storage.void_feedback_of_user(session, user_id=user_id, voided_by=actor.user_id)
        logger.info("admin %s voided %d labels of user %s", actor.user_id, count, user_id)
        return Reply(texts.VOID_DONE.format(user_id=user_id, count=count))


def _run_details(run: Any) -> str:
    """What /runs says after a run's status: progress while it is live, the gate's verdict or error after."""
    if run.status in LIVE_RUN_STATUSES:
        return f" — {run.progress}" if run.progress else ""
    if run.error:
        return " — " + clip(run.error.splitlines()[0], 200)
    if run.gate:
        return "\n" + gate_summary(run.gate)
    return ""


def _describe_model(version: Any) -> str:
    if version is None:
        return texts.MODEL_NONE
    metrics = version.metrics or {}
    return texts.MODEL_INFO.format(
        id=version.id,
        status=texts.MODEL_STATUS.get(_value(version.status), _value(version.status)),
        accuracy=_percent(metrics.get("accuracy")),
        macro_f1=_percent(metrics.get("macro_f1")),
        created=_when(version.created_at),
    )


def _percent(value: object) -> str:
    return f"{100.0 * value:.1f}%" if isinstance(value, int | float) else texts.METRIC_UNKNOWN


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _value(enum_or_text: object) -> str:
    return str(getattr(enum_or_text, "value", enum_or_text))
