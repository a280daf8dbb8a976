"""The review queue: recent verdicts nobody labelled, least certain first, one at a time per reviewer.

Functions flush; the caller commits.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Feedback, ReviewOutcome, ReviewView, Verdict, utcnow

# The lowest-margin candidates considered for the next item; diversity picks among them.
CANDIDATE_POOL = 50
# Two texts this similar (difflib ratio) count as near-duplicates: never shown one right after the other.
NEAR_DUPLICATE_RATIO = 0.8


@dataclass(frozen=True)
class ReviewItem:
    verdict: Verdict
    remaining: int  # items left for this reviewer, this one included


def _unlabelled_unseen(reviewer_id: int, since: datetime):
    labelled = exists().where(Feedback.verdict_id == Verdict.id, Feedback.voided_at.is_(None))
    seen = exists().where(ReviewView.verdict_id == Verdict.id, ReviewView.reviewer_id == reviewer_id)
    return (Verdict.text.is_not(None), Verdict.created_at >= since, ~labelled, ~seen)


def near_duplicate(a: str, b: str) -> bool:
    a, b = " ".join(a.split()).casefold(), " ".join(b.split()).casefold()
    return a == b or difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_DUPLICATE_RATIO


async def next_review_item(session: AsyncSession, *, reviewer_id: int, since: datetime) -> ReviewItem | None:
    """Show `reviewer_id` the next verdict to label and record that they saw it (never shown twice).

    Among unlabelled verdicts since `since` that this reviewer has not seen, the smallest margin between the top
    two probabilities comes first (uncertainty sampling), with two guards for diversity: the item is not a
    near-duplicate of the one shown just before, and its predicted class differs from that one's whenever such
    an item is among the most uncertain `CANDIDATE_POOL`, so both classes are drawn from.
    """
    conditions = _unlabelled_unseen(reviewer_id, since)
    remaining = int(await session.scalar(select(func.count()).select_from(Verdict).where(*conditions)) or 0)
    if remaining == 0:
        return None
    candidates = list(
        await session.scalars(
            select(Verdict)
            .where(*conditions)
            .order_by(Verdict.margin.is_(None), Verdict.margin, Verdict.id.desc())
            .limit(CANDIDATE_POOL)
        )
    )
    previous = await session.scalar(
        select(Verdict)
        .join(ReviewView, ReviewView.verdict_id == Verdict.id)
        .where(ReviewView.reviewer_id == reviewer_id)
        .order_by(ReviewView.shown_at.desc(), ReviewView.id.desc())
        .limit(1)
    )
    if previous is not None and previous.text is not None:
        distinct = [v for v in candidates if not near_duplicate(v.text or "", previous.text)] or candidates
        other_class = [v for v in distinct if v.label != previous.label]
        candidates = other_class or distinct
    chosen = candidates[0]
    try:
        async with session.begin_nested():  # a double /review racing this one records the view first
            session.add(
                ReviewView(reviewer_id=reviewer_id, verdict_id=chosen.id, outcome=ReviewOutcome.SHOWN)
            )
    except IntegrityError:
        pass
    return ReviewItem(verdict=chosen, remaining=remaining)


async def record_review_outcome(
    session: AsyncSession, *, reviewer_id: int, verdict_id: int, outcome: ReviewOutcome
) -> bool:
    """Mark a shown item labelled or skipped; False when it was never shown to this reviewer (a forged button)."""
    view = await session.scalar(
        select(ReviewView).where(ReviewView.reviewer_id == reviewer_id, ReviewView.verdict_id == verdict_id)
    )
    if view is None:
        return False
    view.outcome = ReviewOutcome(outcome)
    view.updated_at = utcnow()
    await session.flush()
    return True
