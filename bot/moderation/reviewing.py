"""The `/review` queue, for admins and reviewers, in a private chat with the bot only: an item's text may come
from any chat, so it is never shown where others could read it.

Buttons: `rv:<verdict id>:<label id>` labels the item shown, `rv:<verdict id>:skip` skips it; either shows the
next item. An answer is a trusted label, and for a disputed item also a blind spot check of the users who
labelled it (`bot.storage.label_trust`).

The web app's queue (bot/web/pages/queue.py) uses the same steps without Telegram's shape: `review_item`,
`review_answer` and `undo_review`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import storage
from bot.moderation import texts
from bot.moderation.context import UseCaseContext
from bot.moderation.labelling import Labelling
from bot.moderation.replies import Actor, Button, NotAllowedError, Reply, friendly_errors, parse_id
from bot.storage import FeedbackSource, ReviewItem, ReviewOutcome, Task
from bot.textclip import clip

logger = logging.getLogger("bot.moderation")

REVIEW_SKIP = "skip"
REVIEW_TEXT_LIMIT = 3000  # characters of a review shown in the review queue (Telegram allows 4,096 in all)


@dataclass(frozen=True)
class ReviewAnswer:
    accepted: bool  # False: the item was not this reviewer's to answer (nothing was recorded)
    text: str  # what became of the answer, in Korean


class Reviewing(Labelling, UseCaseContext):
    @friendly_errors
    async def review(self, *, actor: Actor, private: bool = True) -> Reply:
        """`/review`: the next item for this reviewer, with a button per label."""
        if not self._may_review(actor):
            logger.warning("user %s (not a reviewer) tried /review", actor.user_id)
            return Reply(texts.REVIEW_ONLY)
        if not private:
            return Reply(texts.REVIEW_PRIVATE_ONLY)
        return await self._next_review_item(actor)

    def _may_review(self, actor: Actor) -> bool:
        return actor.user_id is not None and (actor.is_admin or self.settings.is_reviewer(actor.user_id))

    async def review_item(
        self, *, actor: Actor, task: Task | None = None, chat_id: int | None = None, resume: bool = False
    ) -> ReviewItem | None:
        """The next item for this reviewer (of one task or every task, of one chat or every chat), recorded as shown
        to them; with `resume`, the item they were shown last and have not answered comes back first. Raises
        NotAllowedError for anyone but admins and reviewers."""
        if not self._may_review(actor):
            logger.warning("user %s (not a reviewer) asked for a review item", actor.user_id)
            raise NotAllowedError(texts.REVIEW_ONLY)
        assert actor.user_id is not None
        since = datetime.now(UTC) - timedelta(days=self.settings.review_window_days)
        tasks = tuple(Task) if task is None else (Task(task),)
        async with self._transaction() as session:
            return await storage.next_review_item(
                session,
                reviewer_id=actor.user_id,
                since=since,
                rule=self.label_rule,
                sampled_tasks=tasks,
                disputed_tasks=tasks,
                resume=resume,
                chat_id=chat_id,
            )

    async def _next_review_item(self, actor: Actor, *, toast: str | None = None) -> Reply:
        item = await self.review_item(actor=actor)
        if item is None:
            return Reply(texts.REVIEW_EMPTY, toast=toast)
        verdict = item.verdict
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
        if item.disputed:
            body = texts.REVIEW_DISPUTED_NOTE + body
        buttons = tuple(
            Button(name, f"rv:{verdict.id}:{label}") for label, name in self.labels(verdict.task).items()
        )
        return Reply(
            body, buttons=(*buttons, Button(texts.BUTTON_SKIP, f"rv:{verdict.id}:{REVIEW_SKIP}")), toast=toast
        )

    async def review_button(self, *, actor: Actor, rest: str, private: bool = True) -> Reply:
        verdict_part, _, answer = rest.partition(":")
        verdict_id = parse_id(verdict_part)
        if not self._may_review(actor):
            return Reply(texts.REVIEW_ONLY)
        if not private:  # the next item would be posted here: never outside a private chat
            return Reply(texts.REVIEW_PRIVATE_ONLY)
        label = None if answer == REVIEW_SKIP else parse_id(answer)
        if verdict_id is None or (answer != REVIEW_SKIP and label is None):
            return Reply(texts.FEEDBACK_NO_VERDICT)
        return await self.answer_review_item(actor=actor, verdict_id=verdict_id, label=label)

    @friendly_errors
    async def answer_review_item(self, *, actor: Actor, verdict_id: int, label: int | None) -> Reply:
        """A reviewer's answer to an item they were shown (`label=None` skips it); replies with the next item."""
        answer = await self.review_answer(actor=actor, verdict_id=verdict_id, label=label)
        if not answer.accepted:
            return Reply(answer.text)
        return await self._next_review_item(actor, toast=answer.text)

    async def review_answer(self, *, actor: Actor, verdict_id: int, label: int | None) -> ReviewAnswer:
        """Record a reviewer's answer to an item they were shown (`label=None` skips it): a trusted label."""
        if not self._may_review(actor):
            raise NotAllowedError(texts.REVIEW_ONLY)
        assert actor.user_id is not None
        async with self._transaction() as session:
            verdict = await storage.get_verdict(session, verdict_id=verdict_id)
            # Each task has its labels: an id the verdict's task does not have comes from a forged button.
            if verdict is None or (label is not None and label not in self.labels(verdict.task)):
                return ReviewAnswer(False, texts.FEEDBACK_NO_VERDICT)
            shown = await storage.record_review_outcome(
                session,
                reviewer_id=actor.user_id,
                verdict_id=verdict_id,
                outcome=ReviewOutcome.SKIPPED if label is None else ReviewOutcome.LABELLED,
            )
        if not shown:  # never shown to this reviewer: a forged or stale button
            return ReviewAnswer(False, texts.FEEDBACK_NOT_YOURS)
        toast = texts.REVIEW_SKIPPED
        if label is not None:
            recorded = await self.record_label(
                actor=actor,
                verdict_id=verdict.id,
                label=label,
                predicted=verdict.label,
                task=verdict.task,
                source=FeedbackSource.REVIEW,
                trusted=True,
            )
            toast = recorded.text
        return ReviewAnswer(True, toast)

    async def undo_review(self, *, actor: Actor) -> str:
        """Take back this reviewer's last label in the queue; the item comes back (`review_item(resume=True)`)."""
        if not self._may_review(actor):
            raise NotAllowedError(texts.REVIEW_ONLY)
        assert actor.user_id is not None
        async with self._transaction() as session:
            verdict = await storage.undo_review_label(session, reviewer_id=actor.user_id)
        if verdict is None:
            return texts.REVIEW_NOTHING_TO_UNDO
        logger.info("reviewer %s took back their label of verdict %s", actor.user_id, verdict.id)
        return texts.REVIEW_UNDONE
