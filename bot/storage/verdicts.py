"""Verdicts: what the bot answered to which message. Functions flush; the caller commits."""

from __future__ import annotations

import math
from datetime import UTC

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.models import Task, Verdict, VerdictDayCount, utcnow


def _validate_verdict(
    *,
    text: str,
    label: int,
    label_name: str,
    confidence: float,
    probabilities: dict[str, float],
    max_text_length: int,
) -> None:
    if not isinstance(text, str):
        raise InvalidDataError("The review text must be a string.")
    if len(text) > max_text_length:
        raise InvalidDataError(f"The review is {len(text)} characters long; the limit is {max_text_length}.")
    if not probabilities:
        raise InvalidDataError("A verdict needs the probability of every label.")
    if not all(isinstance(p, int | float) and 0.0 <= p <= 1.0 for p in probabilities.values()):
        raise InvalidDataError("Every label probability must be a number between 0 and 1.")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(probabilities):
        raise InvalidDataError(f"Unknown label {label!r}: expected an id from 0 to {len(probabilities) - 1}.")
    if label_name not in probabilities:
        raise InvalidDataError(
            f"Unknown label name {label_name!r}: expected one of {', '.join(probabilities)}."
        )
    if not isinstance(confidence, int | float) or math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
        raise InvalidDataError(f"Confidence must be between 0 and 1, got {confidence!r}.")


async def add_verdict(
    session: AsyncSession,
    *,
    chat_id: int,
    message_id: int,
    user_id: int | None,
    text: str,
    label: int,
    label_name: str,
    confidence: float,
    probabilities: dict[str, float],
    model_version_id: int | None,
    max_text_length: int = 4096,
    task: Task = Task.SENTIMENT,
) -> Verdict:
    """Record a task's verdict; idempotent on (chat_id, message_id, task): a repeat returns the existing row
    unchanged.

    Raises InvalidDataError (writing nothing) for text over `max_text_length`, a label that does not index
    `probabilities`, or a confidence outside [0, 1].
    """
    _validate_verdict(
        text=text,
        label=label,
        label_name=label_name,
        confidence=confidence,
        probabilities=probabilities,
        max_text_length=max_text_length,
    )
    task = Task(task)
    existing = await _verdict_for_message_id(session, chat_id=chat_id, message_id=message_id, task=task)
    if existing is not None:
        return existing
    verdict = Verdict(
        task=task,
        chat_id=chat_id,
        message_id=message_id,
        user_id=user_id,
        text=text,
        text_length=len(text),
        label=label,
        label_name=label_name,
        confidence=float(confidence),
        probabilities={name: float(p) for name, p in probabilities.items()},
        margin=probability_margin(probabilities),
        model_version_id=model_version_id,
        created_at=utcnow(),
    )
    try:
        # A SAVEPOINT, so that losing a race for the same message leaves the caller's transaction usable (and
        # counts nothing).
        async with session.begin_nested():
            session.add(verdict)
            await session.flush()
            await _count_verdict(session, verdict)
    except IntegrityError:
        existing = await _verdict_for_message_id(session, chat_id=chat_id, message_id=message_id, task=task)
        if existing is None:
            raise
        return existing
    return verdict


async def _count_verdict(session: AsyncSession, verdict: Verdict) -> None:
    """Add the verdict to its row of `verdict_day_counts` (the overview's rollup): one atomic upsert, so that
    concurrent writers of the same day, task, chat and label each add theirs."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(VerdictDayCount).values(
        task=verdict.task,
        day=verdict.created_at.astimezone(UTC).date(),
        chat_id=verdict.chat_id,
        label_name=verdict.label_name,
        count=1,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["task", "day", "chat_id", "label_name"],
            set_={"count": VerdictDayCount.count + 1},
        )
    )


def probability_margin(probabilities: dict[str, float]) -> float:
    """The top probability minus the runner-up: small means the model could hardly tell."""
    ranked = sorted((float(p) for p in probabilities.values()), reverse=True)
    return ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)


async def _verdict_for_message_id(
    session: AsyncSession, *, chat_id: int, message_id: int, task: Task
) -> Verdict | None:
    return await session.scalar(
        select(Verdict).where(
            Verdict.chat_id == chat_id, Verdict.message_id == message_id, Verdict.task == task
        )
    )


async def get_verdict(session: AsyncSession, *, verdict_id: int) -> Verdict | None:
    return await session.get(Verdict, verdict_id)


async def set_reply_message_id(session: AsyncSession, *, verdict_id: int, reply_message_id: int) -> None:
    """Remember the bot's reply to a verdict, so that replies to the reply find the verdict (and the verdicts of
    the other tasks on the same message: one reply announces them all)."""
    verdict = await session.get(Verdict, verdict_id)
    if verdict is None:
        raise InvalidDataError(f"Verdict {verdict_id} does not exist.")
    await session.execute(
        update(Verdict)
        .where(Verdict.chat_id == verdict.chat_id, Verdict.message_id == verdict.message_id)
        .values(reply_message_id=reply_message_id)
        .execution_options(synchronize_session="fetch")
    )


async def find_verdict_by_message(
    session: AsyncSession, *, chat_id: int, message_id: int, task: Task = Task.SENTIMENT
) -> Verdict | None:
    """The task's verdict for a message in a chat: `message_id` may be the reviewed message or the bot's
    reply."""
    return await session.scalar(
        select(Verdict)
        .where(
            Verdict.chat_id == chat_id,
            Verdict.task == Task(task),
            or_(Verdict.message_id == message_id, Verdict.reply_message_id == message_id),
        )
        .order_by((Verdict.message_id == message_id).desc(), Verdict.id.desc())
        .limit(1)
    )


async def latest_verdict_for_user(
    session: AsyncSession, *, chat_id: int, user_id: int, task: Task = Task.SENTIMENT
) -> Verdict | None:
    """The task's most recent verdict on a message this user sent in this chat."""
    return await session.scalar(
        select(Verdict)
        .where(Verdict.chat_id == chat_id, Verdict.user_id == user_id, Verdict.task == Task(task))
        .order_by(Verdict.created_at.desc(), Verdict.id.desc())
        .limit(1)
    )
