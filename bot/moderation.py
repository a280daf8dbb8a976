"""The bot's use cases, free of Telegram: each takes plain data and returns a `Reply` (Korean text + buttons).

The Telegram handlers (`bot.telegram.handlers`) and the terminal mode (`bot.telegram.chat`) both call this.
Every use case opens its own short transaction; a verdict is committed before its reply is sent, so it
survives a failed send.

Buttons carry their action in the callback data: `ok:<verdict id>` (맞아요: a confirmation, stored as a label
equal to the verdict, so the model also learns what it gets right), `wrong:<verdict id>` (틀렸어요),
`label:<verdict id>:<label id>` (the chosen label when a model has more than two classes) and, in the review
queue, `rv:<verdict id>:<label id>` or `rv:<verdict id>:skip`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot import storage, versions
from bot.retraining.texts import gate_summary
from bot.serving import MicroBatcher, NoActiveModelError, ServingModel
from bot.settings import Settings
from bot.storage import (
    FeedbackSource,
    InvalidDataError,
    RateLimitedError,
    ReviewOutcome,
    RunTrigger,
    StorageError,
)
from bot.storage.models import LIVE_RUN_STATUSES
from bot.telegram import texts
from classifier.errors import EmptyTextError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from classifier import Verdict

logger = logging.getLogger(__name__)

WRONG_WORDS = frozenset({"wrong", "틀렸어요", "틀림", "오답", "x"})
RIGHT_WORDS = frozenset({"right", "correct", "ok", "맞아요", "맞음", "정답", "o"})
REVIEW_SKIP = "skip"


class RunReporter(Protocol):
    """Where a training run reports to (one message edited with progress, then the result)."""

    async def progress(self, run_id: int, text: str) -> None: ...

    async def finished(self, run_id: int, text: str) -> None: ...


class Retrainer(Protocol):
    """The retraining service, as the bot needs it: queue a run, returns (run id, newly created)."""

    async def request_run(
        self, *, trigger: RunTrigger, requested_by: int | None, reporter: RunReporter | None
    ) -> tuple[int, bool]: ...


@dataclass(frozen=True)
class Button:
    text: str
    data: str  # callback data, at most 64 bytes


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[Button, ...] = ()
    verdict_id: int | None = None  # the verdict this reply announces; its message id is stored after sending
    run_id: int | None = None  # the training run this reply announces
    toast: str | None = None  # for a button press: the short notice shown (default: the text)


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    is_admin: bool


@dataclass(frozen=True)
class IncomingText:
    chat_id: int
    message_id: int
    user_id: int | None
    text: str


P = ParamSpec("P")


def _friendly_errors(method: Callable[P, Awaitable[Reply]]) -> Callable[P, Awaitable[Reply]]:
    """Storage trouble or a missing model becomes a Korean apology instead of an exception."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Reply:
        try:
            return await method(*args, **kwargs)
        except InvalidDataError as exc:
            return Reply(texts.INVALID_DATA.format(detail=exc))
        except RateLimitedError as exc:
            return Reply(texts.FEEDBACK_RATE_LIMITED.format(limit=exc.limit))
        except NoActiveModelError:
            return Reply(texts.NO_MODEL)
        except (StorageError, SQLAlchemyError, OSError):
            logger.exception("storage failed in %s", method.__name__)
            return Reply(texts.STORAGE_ERROR)

    return wrapper


class Moderation:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        serving: ServingModel,
        batcher: MicroBatcher,
        settings: Settings,
        retrainer: Retrainer | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.serving = serving
        self.batcher = batcher
        self.settings = settings
        self.retrainer = retrainer

    def _transaction(self) -> Any:
        return self.session_factory.begin()

    # -- classification -------------------------------------------------------------------------

    @_friendly_errors
    async def classify(self, message: IncomingText, *, show_probabilities: bool = False) -> Reply:
        """Classify a message, store the verdict, and return the reply announcing it."""
        # PostgreSQL text cannot hold NUL; it carries no meaning in a review.
        text = message.text.replace("\x00", "")
        if len(text) > self.settings.max_text_length:
            return Reply(texts.TEXT_TOO_LONG.format(length=len(text), limit=self.settings.max_text_length))
        try:
            verdict, version_id = await self.batcher.classify(text)
        except EmptyTextError:
            return Reply(texts.EMPTY_TEXT)
        async with self._transaction() as session:
            row = await storage.add_verdict(
                session,
                chat_id=message.chat_id,
                message_id=message.message_id,
                user_id=message.user_id,
                text=text,
                label=verdict.label,
                label_name=verdict.label_name,
                confidence=verdict.confidence,
                probabilities=verdict.probabilities,
                model_version_id=version_id,
                max_text_length=self.settings.max_text_length,
            )
        return Reply(
            _verdict_text(verdict, show_probabilities=show_probabilities),
            buttons=(
                Button(texts.BUTTON_RIGHT, f"ok:{row.id}"),
                Button(texts.BUTTON_WRONG, f"wrong:{row.id}"),
            ),
            verdict_id=row.id,
        )

    async def remember_reply(self, *, verdict_id: int, reply_message_id: int) -> None:
        """Store the id of the message that announced a verdict (so replies to it find the verdict)."""
        try:
            async with self._transaction() as session:
                await storage.set_reply_message_id(
                    session, verdict_id=verdict_id, reply_message_id=reply_message_id
                )
        except (StorageError, SQLAlchemyError, OSError):
            # The verdict itself is stored; only replies to the bot's message cannot find it.
            logger.exception("could not store reply message id for verdict %s", verdict_id)

    # -- feedback -------------------------------------------------------------------------------

    @_friendly_errors
    async def feedback(
        self,
        *,
        actor: Actor,
        chat_id: int,
        target_message_id: int | None,
        argument: str,
        verdict_id_hint: int | None = None,
    ) -> Reply:
        """`/feedback wrong`, `/feedback right` or `/feedback <label>`, about the replied-to verdict or the user's
        latest one. A label equal to the verdict is a confirmation.

        `verdict_id_hint` is the verdict named by the replied-to bot message's buttons; it counts only for a
        verdict of this chat, since the client could send anything.
        """
        argument = argument.strip()
        if not argument:
            return Reply(texts.FEEDBACK_USAGE)
        async with self._transaction() as session:
            verdict = None
            if verdict_id_hint is not None:
                verdict = await storage.get_verdict(session, verdict_id=verdict_id_hint)
                if verdict is not None and verdict.chat_id != chat_id:
                    verdict = None
            if verdict is None and target_message_id is not None:
                verdict = await storage.find_verdict_by_message(
                    session, chat_id=chat_id, message_id=target_message_id
                )
            elif verdict is None and actor.user_id is not None:
                verdict = await storage.latest_verdict_for_user(
                    session, chat_id=chat_id, user_id=actor.user_id
                )
        if verdict is None:
            return Reply(texts.FEEDBACK_NO_VERDICT)
        labels = self.labels()
        if argument.lower() in WRONG_WORDS:
            return await self._wrong(
                actor=actor,
                verdict_id=verdict.id,
                predicted=verdict.label,
                labels=labels,
                source=FeedbackSource.COMMAND,
            )
        if argument.lower() in RIGHT_WORDS:
            return await self._record(
                actor=actor,
                verdict_id=verdict.id,
                label=verdict.label,
                labels=labels,
                source=FeedbackSource.COMMAND,
                predicted=verdict.label,
            )
        label = parse_label(argument, labels)
        if label is None:
            return Reply(
                texts.FEEDBACK_UNKNOWN_LABEL.format(given=echo(argument), labels=", ".join(labels.values()))
            )
        return await self._record(
            actor=actor,
            verdict_id=verdict.id,
            label=label,
            labels=labels,
            source=FeedbackSource.COMMAND,
            predicted=verdict.label,
        )

    @_friendly_errors
    async def button(self, *, actor: Actor, chat_id: int, data: str) -> Reply:
        """A press of one of the verdict's inline buttons."""
        action, _, rest = data.partition(":")
        if action == "rv":
            return await self._review_answer(actor=actor, rest=rest)
        numbers = [parse_id(part) for part in rest.split(":")]
        if action not in {"ok", "wrong", "label"} or None in numbers:
            return Reply(texts.FEEDBACK_NO_VERDICT)
        verdict_id = numbers[0]
        async with self._transaction() as session:
            verdict = await storage.get_verdict(session, verdict_id=verdict_id)
        # Callback data comes from the client: only act on verdicts of the chat the button is in.
        if verdict is None or verdict.chat_id != chat_id:
            return Reply(texts.FEEDBACK_NOT_YOURS)
        labels = self.labels()
        if action == "ok":
            return await self._record(
                actor=actor,
                verdict_id=verdict.id,
                label=verdict.label,
                labels=labels,
                predicted=verdict.label,
            )
        if action == "wrong":
            return await self._wrong(
                actor=actor, verdict_id=verdict.id, predicted=verdict.label, labels=labels
            )
        if len(numbers) != 2 or numbers[1] not in labels:
            return Reply(
                texts.FEEDBACK_UNKNOWN_LABEL.format(
                    given=echo(rest.split(":")[-1]), labels=", ".join(labels.values())
                )
            )
        if numbers[1] == verdict.label:  # the bot only offers the other labels: this button was forged
            return Reply(texts.FEEDBACK_SAME_AS_VERDICT.format(label=labels[numbers[1]]))
        return await self._record(
            actor=actor, verdict_id=verdict.id, label=numbers[1], labels=labels, predicted=verdict.label
        )

    async def _wrong(
        self,
        *,
        actor: Actor,
        verdict_id: int,
        predicted: int,
        labels: dict[int, str],
        source: FeedbackSource = FeedbackSource.BUTTON,
    ) -> Reply:
        others = [label for label in labels if label != predicted]
        if len(others) == 1:
            return await self._record(
                actor=actor,
                verdict_id=verdict_id,
                label=others[0],
                labels=labels,
                source=source,
                predicted=predicted,
            )
        return Reply(
            texts.FEEDBACK_CHOOSE,
            buttons=tuple(Button(labels[label], f"label:{verdict_id}:{label}") for label in others),
        )

    async def _record(
        self,
        *,
        actor: Actor,
        verdict_id: int,
        label: int,
        labels: dict[int, str],
        predicted: int,
        source: FeedbackSource = FeedbackSource.BUTTON,
        trusted: bool | None = None,
    ) -> Reply:
        """Store a label (rate-limited for untrusted users); a label equal to `predicted` is a confirmation."""
        if actor.user_id is None:
            return Reply(texts.FEEDBACK_NO_VERDICT)
        try:
            async with self._transaction() as session:
                _, changed = await storage.record_feedback(
                    session,
                    verdict_id=verdict_id,
                    user_id=actor.user_id,
                    label=label,
                    num_labels=len(labels),
                    is_admin=actor.is_admin,
                    trusted=trusted,
                    source=source,
                    hourly_limit=self.settings.feedback_rate_limit_per_hour,
                )
        except RateLimitedError:
            logger.info("label rate limit reached by user %s", actor.user_id)
            raise
        if not changed:
            return Reply(texts.FEEDBACK_ALREADY.format(label=labels[label]))
        template = texts.FEEDBACK_CONFIRMED if label == predicted else texts.FEEDBACK_RECORDED
        return Reply(template.format(label=labels[label]))

    # -- review queue ---------------------------------------------------------------------------

    @_friendly_errors
    async def review(self, *, actor: Actor) -> Reply:
        """`/review`: the next unlabelled verdict for this reviewer, least certain first, with a button per label."""
        if not self._may_review(actor):
            logger.warning("user %s (not a reviewer) tried /review", actor.user_id)
            return Reply(texts.REVIEW_ONLY)
        return await self._next_review_item(actor)

    def _may_review(self, actor: Actor) -> bool:
        return actor.user_id is not None and (actor.is_admin or self.settings.is_reviewer(actor.user_id))

    async def _next_review_item(self, actor: Actor, *, toast: str | None = None) -> Reply:
        assert actor.user_id is not None
        since = datetime.now(UTC) - timedelta(days=self.settings.review_window_days)
        async with self._transaction() as session:
            item = await storage.next_review_item(session, reviewer_id=actor.user_id, since=since)
        if item is None:
            return Reply(texts.REVIEW_EMPTY, toast=toast)
        verdict = item.verdict
        labels = self.labels()
        probabilities = ", ".join(
            f"{name} {100.0 * probability:.1f}%"
            for name, probability in (verdict.probabilities or {}).items()
        )
        body = texts.REVIEW_ITEM.format(
            remaining=item.remaining,
            text=clip(verdict.text or "", REVIEW_TEXT_LIMIT),
            verdict=verdict.label_name,
            probabilities=probabilities,
        )
        buttons = tuple(Button(name, f"rv:{verdict.id}:{label}") for label, name in labels.items())
        return Reply(
            body, buttons=(*buttons, Button(texts.BUTTON_SKIP, f"rv:{verdict.id}:{REVIEW_SKIP}")), toast=toast
        )

    async def _review_answer(self, *, actor: Actor, rest: str) -> Reply:
        verdict_part, _, answer = rest.partition(":")
        verdict_id = parse_id(verdict_part)
        if not self._may_review(actor):
            return Reply(texts.REVIEW_ONLY)
        labels = self.labels()
        label = None if answer == REVIEW_SKIP else parse_id(answer)
        if verdict_id is None or (answer != REVIEW_SKIP and label not in labels):
            return Reply(texts.FEEDBACK_NO_VERDICT)
        return await self.answer_review_item(actor=actor, verdict_id=verdict_id, label=label)

    @_friendly_errors
    async def answer_review_item(self, *, actor: Actor, verdict_id: int, label: int | None) -> Reply:
        """A reviewer's answer to an item they were shown (`label=None` skips it); replies with the next item."""
        assert actor.user_id is not None
        labels = self.labels()
        async with self._transaction() as session:
            shown = await storage.record_review_outcome(
                session,
                reviewer_id=actor.user_id,
                verdict_id=verdict_id,
                outcome=ReviewOutcome.SKIPPED if label is None else ReviewOutcome.LABELLED,
            )
            verdict = await storage.get_verdict(session, verdict_id=verdict_id) if shown else None
        if verdict is None:  # never shown to this reviewer: a forged or stale button
            return Reply(texts.FEEDBACK_NOT_YOURS)
        toast = texts.REVIEW_SKIPPED
        if label is not None:
            recorded = await self._record(
                actor=actor,
                verdict_id=verdict.id,
                label=label,
                labels=labels,
                predicted=verdict.label,
                source=FeedbackSource.REVIEW,
                trusted=True,
            )
            toast = recorded.text
        return await self._next_review_item(actor, toast=toast)

    def labels(self) -> dict[int, str]:
        """Label ids and names of the model being served."""
        return dict(sorted(self.serving.active.classifier.id2label.items()))

    # -- information ----------------------------------------------------------------------------

    @_friendly_errors
    async def stats(self) -> Reply:
        async with self._transaction() as session:
            numbers = await storage.get_stats(session)
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
                by_label=by_label,
                model=_describe_model(active),
            )
        )

    @_friendly_errors
    async def model_info(self) -> Reply:
        async with self._transaction() as session:
            active = await storage.get_active_model_version(session)
        text = texts.MODEL_INFO_HEADER + _describe_model(active)
        served = self.serving.active.version_id if self.serving.is_loaded else None
        if active is not None and served is not None and served != active.id:
            text += "\n" + texts.MODEL_SERVING_OTHER.format(served=served, active=active.id)
        return Reply(text)

    # -- administration -------------------------------------------------------------------------

    def _refuse(self, actor: Actor, command: str) -> Reply:
        logger.warning("non-admin user %s tried /%s", actor.user_id, command)
        return Reply(texts.ADMIN_ONLY)

    @_friendly_errors
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
                    status=_value(run.status),
                    trigger=_value(run.trigger),
                    created=_when(run.created_at),
                    details=_run_details(run),
                )
            )
        return Reply("\n".join(lines))

    @_friendly_errors
    async def retrain(self, *, actor: Actor, trigger: RunTrigger, reporter: RunReporter | None) -> Reply:
        if not actor.is_admin:
            return self._refuse(actor, "retrain")
        if self.retrainer is not None:
            run_id, created = await self.retrainer.request_run(
                trigger=trigger, requested_by=actor.user_id, reporter=reporter
            )
        else:
            async with self._transaction() as session:
                run, created = await storage.start_training_run(
                    session, trigger=trigger, requested_by=actor.user_id
                )
                run_id = run.id
        template = texts.RETRAIN_QUEUED if created else texts.RETRAIN_ALREADY
        return Reply(template.format(run_id=run_id), run_id=run_id)

    @_friendly_errors
    async def rollback(self, *, actor: Actor) -> Reply:
        """Back to the version that served before, through the activation history (see `bot.versions`)."""
        if not actor.is_admin:
            return self._refuse(actor, "rollback")
        try:
            done = await versions.rollback(self.session_factory, self.settings, actor=actor.user_id)
        except versions.VersionError as exc:
            if not exc.skipped:
                return Reply(texts.ROLLBACK_NONE)
            skipped = ", ".join(f"#{version_id}" for version_id, _ in exc.skipped)
            return Reply(texts.ROLLBACK_NONE + "\n" + texts.ROLLBACK_SKIPPED.format(skipped=skipped))
        self.serving.swap(done.classifier, done.version.id)
        logger.info("admin %s rolled back to model version %s", actor.user_id, done.version.id)
        text = texts.ROLLBACK_DONE.format(old=done.previous_id or "-", new=done.version.id)
        if done.skipped:
            text += "\n" + texts.ROLLBACK_SKIPPED.format(
                skipped=", ".join(f"#{version_id}" for version_id, _ in done.skipped)
            )
        return Reply(text)

    @_friendly_errors
    async def void(self, *, actor: Actor, argument: str) -> Reply:
        if not actor.is_admin:
            return self._refuse(actor, "void")
        user_id = parse_id(argument)
        if user_id is None:
            return Reply(texts.VOID_USAGE)
        async with self._transaction() as session:
            count = await storage.void_feedback_of_user(session, user_id=user_id, voided_by=actor.user_id)
        logger.info("admin %s voided %d corrections of user %s", actor.user_id, count, user_id)
        return Reply(texts.VOID_DONE.format(user_id=user_id, count=count))


# Telegram user, chat and message ids fit in 64 bits; anything longer is not an id (and would overflow BIGINT).
_ID_PATTERN = re.compile(r"-?[0-9]{1,18}")
ECHO_LIMIT = 64  # characters of a user's own input quoted back in a reply
REVIEW_TEXT_LIMIT = 3000  # characters of a review shown in the review queue (Telegram allows 4,096 in all)


def parse_id(value: str) -> int | None:
    """An integer id written in ASCII digits, or None. `str.isdigit` accepts '²' and other digits `int` rejects."""
    value = value.strip()
    return int(value) if _ID_PATTERN.fullmatch(value) else None


def echo(value: str) -> str:
    """A user's input as quoted back in a reply: cut, so that no reply outgrows Telegram's limits."""
    return clip(" ".join(value.split()), ECHO_LIMIT)


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _run_details(run: Any) -> str:
    """What /runs says after a run's status: progress while it is live, the gate's verdict or error after."""
    if run.status in LIVE_RUN_STATUSES:
        return f" — {run.progress}" if run.progress else ""
    if run.error:
        return " — " + clip(run.error.splitlines()[0], 200)
    if run.gate:
        return "\n" + gate_summary(run.gate)
    return ""


def _verdict_text(verdict: Verdict, *, show_probabilities: bool) -> str:
    text = texts.VERDICT.format(label=verdict.label_name, confidence=100.0 * verdict.confidence)
    if show_probabilities:
        lines = [texts.PROBABILITIES_HEADER]
        lines += [
            texts.PROBABILITY_LINE.format(label=label, probability=100.0 * probability)
            for label, probability in verdict.probabilities.items()
        ]
        text += "\n" + "\n".join(lines)
    if verdict.truncated:
        text += texts.VERDICT_TRUNCATED_NOTE
    return text


def parse_label(argument: str, labels: dict[int, str]) -> int | None:
    wanted = argument.strip().casefold()
    for label_id, name in labels.items():
        if name.casefold() == wanted:
            return label_id
    number = parse_id(wanted)
    return number if number in labels else None


def _describe_model(version: Any) -> str:
    if version is None:
        return texts.MODEL_NONE
    metrics = version.metrics or {}
    return texts.MODEL_INFO.format(
        id=version.id,
        status=_value(version.status),
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
