"""Classifying a review: the verdict is stored before the reply that announces it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from bot import metrics, storage
from bot.moderation import texts
from bot.moderation.context import UseCaseContext
from bot.moderation.replies import Button, IncomingText, Reply, friendly_errors
from bot.reviews import is_review, visible_length
from bot.storage import StorageError, Task
from classifier import Verdict
from classifier.errors import EmptyTextError
from classifier.tasks import CLEAN_LABEL

logger = logging.getLogger("bot.moderation")


@dataclass(frozen=True)
class Judgement:
    """A message's verdicts, stored: sentiment always, toxicity when a toxicity model is served."""

    sentiment: Verdict
    sentiment_row: storage.Verdict
    toxicity: Verdict | None = None
    toxicity_row: storage.Verdict | None = None


class Classification(UseCaseContext):
    @friendly_errors
    async def classify(self, message: IncomingText, *, show_probabilities: bool = False) -> Reply:
        """Classify a review, store the verdict, and return the reply announcing it.

        What is no review (`bot.reviews.is_review`) is neither classified nor stored: a private chat gets a short
        answer, a group none (`/predict` on a text is asked for explicitly, so it is never a reply to the bot)."""
        screened = self.screen(message)
        if isinstance(screened, Reply):
            return screened
        try:
            judgement = await self.judge(message, screened)
        except EmptyTextError:
            return Reply(texts.EMPTY_TEXT)
        return verdict_reply(judgement, show_probabilities=show_probabilities)

    def screen(self, message: IncomingText) -> str | Reply:
        """The text to judge, or the answer to a message that is no review."""
        # PostgreSQL text cannot hold NUL; it carries no meaning in a review.
        text = message.text.replace("\x00", "")
        if len(text) > self.settings.max_text_length:
            return Reply(texts.TEXT_TOO_LONG.format(length=len(text), limit=self.settings.max_text_length))
        if not visible_length(text):
            return Reply(texts.EMPTY_TEXT, silent=not message.private)
        if not is_review(text, replies_to_bot=message.replies_to_bot):
            return Reply(texts.NOT_A_REVIEW, silent=not message.private)
        return text

    async def judge(self, message: IncomingText, text: str) -> Judgement:
        """Both tasks' verdicts on `text`, stored in one transaction (idempotent per message and task)."""
        started = time.perf_counter()
        # Both tasks' models run at once, each in its own worker thread behind its own micro-batcher.
        (verdict, version_id), toxicity = await asyncio.gather(
            self.batcher.classify(text), self._toxicity_verdict(text)
        )
        async with self._transaction() as session:
            row = await self._store(session, message, text, verdict, version_id, Task.SENTIMENT)
            toxicity_row = (
                None
                if toxicity is None
                else await self._store(session, message, text, *toxicity, Task.TOXICITY)
            )
        metrics.VERDICT_LATENCY.observe(time.perf_counter() - started)
        for stored in (row, toxicity_row):
            if stored is not None:
                metrics.record_verdict(task=str(stored.task), label=stored.label_name)
        return Judgement(verdict, row, toxicity[0] if toxicity else None, toxicity_row)

    async def _toxicity_verdict(self, text: str) -> tuple[Verdict, int | None] | None:
        """The toxicity verdict and its model version, or None when no toxicity model serves (or it failed:
        the review still gets its sentiment verdict)."""
        if self.toxicity is None or not self.toxicity.serving.is_loaded:
            return None
        try:
            return await self.toxicity.batcher.classify(text)
        except Exception:
            logger.exception("the toxicity model could not judge a review; answering with sentiment only")
            return None

    async def _store(
        self,
        session,
        message: IncomingText,
        text: str,
        verdict: Verdict,
        version_id: int | None,
        task: Task,
    ) -> storage.Verdict:
        return await storage.add_verdict(
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
            task=task,
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


def verdict_reply(judgement: Judgement, *, show_probabilities: bool) -> Reply:
    """The reply announcing a judgement, with buttons to confirm or correct it."""
    row = judgement.sentiment_row
    reply = verdict_text(judgement.sentiment, show_probabilities=show_probabilities)
    buttons = [Button(texts.BUTTON_RIGHT, f"ok:{row.id}"), Button(texts.BUTTON_WRONG, f"wrong:{row.id}")]
    toxicity, toxicity_row = judgement.toxicity, judgement.toxicity_row
    if toxicity is not None and toxicity_row is not None:
        if show_probabilities:
            reply += "\n" + probability_lines(toxicity, texts.TOXICITY_PROBABILITIES_HEADER)
        elif toxicity.label_name != CLEAN_LABEL:
            reply += "\n" + texts.TOXICITY_LINE.format(
                label=toxicity.label_name, confidence=100.0 * toxicity.confidence
            )
        if toxicity.label_name != CLEAN_LABEL:  # a toxic verdict can be confirmed or corrected
            buttons += [
                Button(texts.BUTTON_TOXIC_RIGHT, f"ok:{toxicity_row.id}"),
                Button(texts.BUTTON_TOXIC_WRONG, f"wrong:{toxicity_row.id}"),
            ]
    return Reply(reply, buttons=tuple(buttons), verdict_id=row.id)


def verdict_text(verdict: Verdict, *, show_probabilities: bool) -> str:
    text = texts.VERDICT.format(label=verdict.label_name, confidence=100.0 * verdict.confidence)
    if show_probabilities:
        text += "\n" + probability_lines(verdict, texts.PROBABILITIES_HEADER)
    if verdict.truncated:
        text += texts.VERDICT_TRUNCATED_NOTE
    return text


def probability_lines(verdict: Verdict, header: str) -> str:
    lines = [header]
    lines += [
        texts.PROBABILITY_LINE.format(label=label, probability=100.0 * probability)
        for label, probability in verdict.probabilities.items()
    ]
    return "\n".join(lines)
