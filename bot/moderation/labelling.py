"""People's labels of verdicts: 맞아요 / 틀렸어요 buttons and `/feedback`, each answered truthfully: the label
counts now, waits for a reviewer, or cannot count, and why (`bot.storage.label_trust`).

Buttons carry their action in the callback data: `ok:<verdict id>` (맞아요: a confirmation, stored as a label
equal to the verdict, so the model also learns what it gets right), `wrong:<verdict id>` (틀렸어요) and
`label:<verdict id>:<label id>` (the chosen label when a model has more than two classes).
"""

from __future__ import annotations

import logging

from bot import metrics, storage
from bot.moderation import texts
from bot.moderation.context import UseCaseContext
from bot.moderation.replies import Actor, Button, Reply, echo, friendly_errors, parse_id, parse_label
from bot.storage import FeedbackSource, RateLimitedError, Standing, Task
from classifier.tasks import task_of_label

logger = logging.getLogger("bot.moderation")

WRONG_WORDS = frozenset({"wrong", "틀렸어요", "틀림", "오답", "x"})
RIGHT_WORDS = frozenset({"right", "correct", "ok", "맞아요", "맞음", "정답", "o"})


class Labelling(UseCaseContext):
    @friendly_errors
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
            # A label name says its task (names are unique across tasks): `/feedback 혐오` labels the message's
            # toxicity verdict, whichever of its verdicts was found.
            named_task = task_of_label(argument)
            if verdict is not None and named_task is not None and verdict.task != named_task:
                verdict = await storage.find_verdict_by_message(
                    session, chat_id=chat_id, message_id=verdict.message_id, task=Task(named_task)
                )
                if verdict is None:
                    return Reply(texts.FEEDBACK_NO_TASK_VERDICT.format(label=echo(argument)))
        if verdict is None:
            return Reply(texts.FEEDBACK_NO_VERDICT)
        labels = self.labels(verdict.task)
        word = argument.lower()
        if word in WRONG_WORDS:
            return await self._wrong(
                actor=actor,
                verdict_id=verdict.id,
                predicted=verdict.label,
                task=verdict.task,
                source=FeedbackSource.COMMAND,
            )
        label = verdict.label if word in RIGHT_WORDS else parse_label(argument, labels)
        if label is None:
            return Reply(
                texts.FEEDBACK_UNKNOWN_LABEL.format(given=echo(argument), labels=", ".join(labels.values()))
            )
        return await self.record_label(
            actor=actor,
            verdict_id=verdict.id,
            label=label,
            predicted=verdict.label,
            task=verdict.task,
            source=FeedbackSource.COMMAND,
        )

    async def label_button(self, *, actor: Actor, action: str, rest: str, chat_id: int) -> Reply:
        """A press of one of a verdict's buttons (`ok`, `wrong`, `label`)."""
        numbers = [parse_id(part) for part in rest.split(":")]
        if None in numbers:
            return Reply(texts.FEEDBACK_NO_VERDICT)
        async with self._transaction() as session:
            verdict = await storage.get_verdict(session, verdict_id=numbers[0])
        # Callback data comes from the client: only act on verdicts of the chat the button is in.
        if verdict is None or verdict.chat_id != chat_id:
            return Reply(texts.FEEDBACK_NOT_YOURS)
        labels = self.labels(verdict.task)
        if action == "ok":
            return await self.record_label(
                actor=actor,
                verdict_id=verdict.id,
                label=verdict.label,
                predicted=verdict.label,
                task=verdict.task,
            )
        if action == "wrong":
            return await self._wrong(
                actor=actor, verdict_id=verdict.id, predicted=verdict.label, task=verdict.task
            )
        if len(numbers) != 2 or numbers[1] not in labels:
            return Reply(
                texts.FEEDBACK_UNKNOWN_LABEL.format(
                    given=echo(rest.split(":")[-1]), labels=", ".join(labels.values())
                )
            )
        if numbers[1] == verdict.label:  # the bot only offers the other labels: this button was forged
            return Reply(texts.FEEDBACK_SAME_AS_VERDICT.format(label=labels[numbers[1]]))
        return await self.record_label(
            actor=actor, verdict_id=verdict.id, label=numbers[1], predicted=verdict.label, task=verdict.task
        )

    async def _wrong(
        self,
        *,
        actor: Actor,
        verdict_id: int,
        predicted: int,
        task: Task,
        source: FeedbackSource = FeedbackSource.BUTTON,
    ) -> Reply:
        labels = self.labels(task)
        others = [label for label in labels if label != predicted]
        if len(others) == 1:
            return await self.record_label(
                actor=actor,
                verdict_id=verdict_id,
                label=others[0],
                predicted=predicted,
                task=task,
                source=source,
            )
        return Reply(
            texts.FEEDBACK_CHOOSE,
            buttons=tuple(Button(labels[label], f"label:{verdict_id}:{label}") for label in others),
        )

    async def record_label(
        self,
        *,
        actor: Actor,
        verdict_id: int,
        label: int,
        predicted: int,
        task: Task,
        source: FeedbackSource = FeedbackSource.BUTTON,
        trusted: bool | None = None,
    ) -> Reply:
        """Store a label of the task's verdict (rate-limited for untrusted users) and say what becomes of it; a
        label equal to `predicted` is a confirmation."""
        if actor.user_id is None:
            return Reply(texts.FEEDBACK_NO_VERDICT)
        labels = self.labels(task)
        try:
            async with self._transaction() as session:
                feedback, changed = await storage.record_feedback(
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
                standing = (
                    None
                    if feedback.trusted
                    else await storage.labeller_standing(session, user_id=actor.user_id, rule=self.label_rule)
                )
        except RateLimitedError:
            logger.info("label rate limit reached by user %s", actor.user_id)
            raise
        if not changed:
            return Reply(texts.FEEDBACK_ALREADY.format(label=labels[label]))
        metrics.record_label(task=str(task), confirmation=label == predicted, source=str(source))
        template = texts.FEEDBACK_CONFIRMED if label == predicted else texts.FEEDBACK_RECORDED
        return Reply(template.format(label=labels[label]) + " " + self._fate(standing))

    def _fate(self, standing: Standing | None) -> str:
        """What becomes of a label, in one sentence (None: a trusted label)."""
        if standing is None or standing is Standing.EARNED:
            return texts.LABEL_COUNTS
        if standing is Standing.FAILING:
            return texts.LABEL_NOT_COUNTED_RECORD
        if not self.anyone_can_check:
            return texts.LABEL_NOT_COUNTED_NO_REVIEWER
        return texts.LABEL_WAITS_FOR_REVIEWER
