"""The review queue, one item at a time per reviewer, never the same item twice:

1. **Disputed verdicts** first: verdicts whose untrusted labels wait for a check (`label_trust.needs_check`:
   their author is unproven, or the label is in the spot-check sample), no trusted label settled yet. The
   labeller with the fewest checks comes first, so every user's record builds with the fewest answers, and a
   user's own labels come in an order they cannot predict (`label_trust.spot_check_draw`); a reviewer never
   checks their own label.
2. Then recent verdicts nobody labelled, least certain first (uncertainty sampling), of the tasks the caller
   names: those whose labels a run trains on today.

The reviewer is shown the text and the model's verdict, never the users' labels: a check is blind.

Functions flush; the caller commits.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.reviews import MIN_REVIEW_CHARS, is_review
from bot.storage.label_trust import LabelRule, labeller_records, needs_check, record_of, spot_check_draw
from bot.storage.models import Feedback, ReviewOutcome, ReviewView, Task, Verdict, utcnow

# The lowest-margin candidates considered for the next item; diversity picks among them.
CANDIDATE_POOL = 50
# Two texts this similar (difflib ratio) count as near-duplicates: never shown one right after the other.
NEAR_DUPLICATE_RATIO = 0.8


@dataclass(frozen=True)
class ReviewItem:
    verdict: Verdict
    remaining: int  # items left for this reviewer, this one included
    disputed: bool = False  # a user's label waits for this answer


def _unlabelled_unseen(reviewer_id: int, since: datetime, tasks: Sequence[Task]):
    labelled = exists().where(Feedback.verdict_id == Verdict.id, Feedback.voided_at.is_(None))
    seen = exists().where(ReviewView.verdict_id == Verdict.id, ReviewView.reviewer_id == reviewer_id)
    long_enough = Verdict.text_length >= MIN_REVIEW_CHARS  # what is shorter is no review (bot.reviews)
    return (
        Verdict.text.is_not(None),
        long_enough,
        Verdict.created_at >= since,
        Verdict.task.in_([Task(task) for task in tasks]),
        ~labelled,
        ~seen,
    )


def near_duplicate(a: str, b: str) -> bool:
    a, b = " ".join(a.split()).casefold(), " ".join(b.split()).casefold()
    return a == b or difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_DUPLICATE_RATIO


async def disputed_verdicts(
    session: AsyncSession, *, reviewer_id: int, since: datetime, rule: LabelRule
) -> list[int]:
    """Verdict ids that wait for this reviewer's check, in the order the queue shows them."""
    trusted = aliased(Feedback)
    settled = exists().where(
        trusted.verdict_id == Verdict.id, trusted.trusted.is_(True), trusted.voided_at.is_(None)
    )
    seen = exists().where(ReviewView.verdict_id == Verdict.id, ReviewView.reviewer_id == reviewer_id)
    rows = (
        await session.execute(
            select(Feedback, Verdict.text)
            .join(Verdict, Feedback.verdict_id == Verdict.id)
            .where(
                Feedback.voided_at.is_(None),
                Feedback.trusted.is_(False),
                Verdict.text.is_not(None),
                Verdict.created_at >= since,
                ~settled,
                ~seen,
            )
        )
    ).all()
    if not rows:
        return []
    mine = {feedback.verdict_id for feedback, _ in rows if feedback.user_id == reviewer_id}
    records = await labeller_records(session, user_ids={feedback.user_id for feedback, _ in rows})
    order: dict[int, tuple[int, float]] = {}
    for feedback, text in rows:
        if feedback.verdict_id in mine or not is_review(text) or not needs_check(feedback, records, rule):
            continue
        key = (record_of(records, feedback.user_id).checks, spot_check_draw(feedback.id))
        order[feedback.verdict_id] = min(order.get(feedback.verdict_id, key), key)
    return sorted(order, key=order.__getitem__)


async def next_review_item(
    session: AsyncSession,
    *,
    reviewer_id: int,
    since: datetime,
    rule: LabelRule,
    sampled_tasks: Sequence[Task] = tuple(Task),
) -> ReviewItem | None:
    """Show `reviewer_id` the next item (see the module's docstring) and record that they saw it.

    Disputed verdicts of every task come first (users' labels wait on them, and a labeller's record is one
    across tasks); unlabelled ones are drawn from `sampled_tasks` (by default every task: each one retrains on
    its reviewers' answers).

    Among unlabelled verdicts since `since`, the smallest margin between the top two probabilities comes first,
    with two guards for diversity: the item is not a near-duplicate of the one shown just before, and its
    predicted class differs from that one's whenever such an item is among the most uncertain
    `CANDIDATE_POOL`, so both classes are drawn from.
    """
    disputed = await disputed_verdicts(session, reviewer_id=reviewer_id, since=since, rule=rule)
    conditions = _unlabelled_unseen(reviewer_id, since, sampled_tasks)
    unlabelled = int(await session.scalar(select(func.count()).select_from(Verdict).where(*conditions)) or 0)
    remaining = len(disputed) + unlabelled
    if remaining == 0:
        return None
    if disputed:
        chosen = await session.get(Verdict, disputed[0])
        assert chosen is not None
    else:
        chosen = await _least_certain(session, reviewer_id=reviewer_id, conditions=conditions)
    try:
        async with session.begin_nested():  # a double /review racing this one records the view first
            session.add(
                ReviewView(reviewer_id=reviewer_id, verdict_id=chosen.id, outcome=ReviewOutcome.SHOWN)
            )
    except IntegrityError:
        pass
    return ReviewItem(verdict=chosen, remaining=remaining, disputed=bool(disputed))


async def _least_certain(session: AsyncSession, *, reviewer_id: int, conditions) -> Verdict:
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
    return candidates[0]


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
