"""Feedback: users' corrections of verdicts, and the training set built from them. Functions flush; the caller commits."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.models import Feedback, TrainingRun, Verdict, utcnow


@dataclass(frozen=True)
class Correction:
    """One training example from users' corrections: the verdict's text and the label they settled on."""

    verdict_id: int
    text: str
    label: int
    feedback_ids: list[int] = field(default_factory=list)  # every live correction of this verdict considered


async def record_feedback(
    session: AsyncSession, *, verdict_id: int, user_id: int, label: int, num_labels: int, is_admin: bool
) -> tuple[Feedback, bool]:
    """Record `user_id`'s correction of a verdict; returns (row, changed).

    A user has one correction per verdict: a newer one replaces the older in place (changed is False when
    the label is the same). A changed label is no longer "used" by any run, so it counts towards the next
    retraining. A correction an admin voided stays voided when its author sends it again.
    Raises InvalidDataError (writing nothing) for a label outside [0, num_labels) or a missing verdict.
    """
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_labels:
        raise InvalidDataError(f"Unknown label {label!r}: expected an id from 0 to {num_labels - 1}.")
    if await session.get(Verdict, verdict_id) is None:
        raise InvalidDataError(f"Verdict {verdict_id} does not exist, so it cannot be corrected.")

    existing = await _feedback_of(session, verdict_id=verdict_id, user_id=user_id)
    if existing is None:
        now = utcnow()
        feedback = Feedback(
            verdict_id=verdict_id,
            user_id=user_id,
            label=label,
            is_admin=is_admin,
            created_at=now,
            updated_at=now,
        )
        try:
            # A SAVEPOINT: a double tap racing this one inserts first, and then this becomes an update.
            async with session.begin_nested():
                session.add(feedback)
            return feedback, True
        except IntegrityError:
            existing = await _feedback_of(session, verdict_id=verdict_id, user_id=user_id)
            if existing is None:
                raise
    return await _replace_feedback(session, existing, label=label, is_admin=is_admin)


async def _replace_feedback(
    session: AsyncSession, feedback: Feedback, *, label: int, is_admin: bool
) -> tuple[Feedback, bool]:
    changed = feedback.label != label
    feedback.updated_at = utcnow()
    feedback.is_admin = is_admin
    if changed:
        feedback.label = label
        feedback.used_by_run_id = None
    await session.flush()
    return feedback, changed


async def _feedback_of(session: AsyncSession, *, verdict_id: int, user_id: int) -> Feedback | None:
    return await session.scalar(
        select(Feedback)
        .where(Feedback.verdict_id == verdict_id, Feedback.user_id == user_id)
        .execution_options(populate_existing=True)
    )


async def count_feedback_by_user_since(session: AsyncSession, *, user_id: int, since: datetime) -> int:
    """How many corrections `user_id` sent (new or replaced) since `since` (for rate limiting)."""
    count = await session.scalar(
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.user_id == user_id, Feedback.updated_at >= since)
    )
    return int(count or 0)


async def void_feedback_of_user(session: AsyncSession, *, user_id: int, voided_by: int) -> int:
    """Void every live correction of `user_id` (an admin's decision); returns how many were voided."""
    result = await session.execute(
        update(Feedback)
        .where(Feedback.user_id == user_id, Feedback.voided_at.is_(None))
        .values(voided_at=utcnow(), voided_by=voided_by)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)


async def count_unused_feedback(session: AsyncSession, *, require_agreement: bool | None = None) -> int:
    """Live (not voided) corrections that no training run has used yet.

    With `require_agreement` given, only corrections that `export_corrections` would train on count, so a
    lone non-admin correction that is never exported cannot keep triggering scheduled runs.
    """
    query = (
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.voided_at.is_(None), Feedback.used_by_run_id.is_(None))
    )
    if require_agreement is not None:
        exported = await export_corrections(session, require_agreement=require_agreement)
        feedback_ids = [feedback_id for correction in exported for feedback_id in correction.feedback_ids]
        if not feedback_ids:
            return 0
        query = query.where(Feedback.id.in_(feedback_ids))
    return int(await session.scalar(query) or 0)


async def mark_feedback_used(session: AsyncSession, *, feedback_ids: Sequence[int], run_id: int) -> None:
    """Record that run `run_id` used these corrections; a correction keeps the first run that used it."""
    if not feedback_ids:
        return
    if await session.get(TrainingRun, run_id) is None:
        raise InvalidDataError(f"Training run {run_id} does not exist.")
    await session.execute(
        update(Feedback)
        .where(Feedback.id.in_(list(feedback_ids)), Feedback.used_by_run_id.is_(None))
        .values(used_by_run_id=run_id)
        .execution_options(synchronize_session="fetch")
    )


async def export_corrections(session: AsyncSession, *, require_agreement: bool = True) -> list[Correction]:
    """The corrections to train on, one per verdict, by this conflict rule:

    - For each verdict, take each user's latest correction that is not voided (one row per user).
    - If any admin corrected it, the most recent admin correction wins.
    - Otherwise the majority label among users wins; a tie goes to the most recent correction among the tied labels.
    - With `require_agreement=True` (the default for retraining, so that a single user cannot teach the model
      whatever they like), a verdict corrected only by non-admins counts only if at least two distinct users
      agree on the winning label.

    Verdicts whose text retention purged are left out (there is nothing to train on). Each Correction lists
    the ids of all live corrections of its verdict, which `mark_feedback_used` then records.
    """
    rows = (
        await session.execute(
            select(Feedback, Verdict.text)
            .join(Verdict, Feedback.verdict_id == Verdict.id)
            .where(Feedback.voided_at.is_(None), Verdict.text.is_not(None))
            .order_by(Feedback.verdict_id, Feedback.id)
        )
    ).all()
    feedback_by_verdict: dict[int, list[Feedback]] = defaultdict(list)
    text_by_verdict: dict[int, str] = {}
    for feedback, text in rows:
        feedback_by_verdict[feedback.verdict_id].append(feedback)
        text_by_verdict[feedback.verdict_id] = text

    corrections = []
    for verdict_id, feedback_rows in feedback_by_verdict.items():
        label = winning_label(feedback_rows, require_agreement=require_agreement)
        if label is not None:
            corrections.append(
                Correction(
                    verdict_id=verdict_id,
                    text=text_by_verdict[verdict_id],
                    label=label,
                    feedback_ids=[feedback.id for feedback in feedback_rows],
                )
            )
    return corrections


def winning_label(feedback_rows: Sequence[Feedback], *, require_agreement: bool) -> int | None:
    """The label one verdict's live corrections (one per user) settle on, or None; see `export_corrections`."""
    if not feedback_rows:
        return None

    def recency(feedback: Feedback) -> tuple[datetime, int]:
        return feedback.updated_at, feedback.id

    admin_rows = [feedback for feedback in feedback_rows if feedback.is_admin]
    if admin_rows:
        return max(admin_rows, key=recency).label
    votes = Counter(feedback.label for feedback in feedback_rows)
    top_count = max(votes.values())
    tied_labels = {label for label, count in votes.items() if count == top_count}
    label = max((feedback for feedback in feedback_rows if feedback.label in tied_labels), key=recency).label
    if require_agreement and votes[label] < 2:
        return None
    return label
