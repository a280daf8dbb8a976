"""The review queue, one item at a time per reviewer, never the same item twice:

1. **Disputed verdicts** first: verdicts whose untrusted labels wait for a check (`label_trust.needs_check`:
   their author is unproven, or the label is in the spot-check sample), no trusted label settled yet. The
   labeller with the fewest checks comes first, so every user's record builds with the fewest answers, and a
   user's own labels come in an order they cannot predict (`label_trust.spot_check_draw`); a reviewer never
   checks their own label.
2. Then recent verdicts nobody labelled, least certain first (uncertainty sampling), of the tasks the caller
   names: those whose labels a run trains on today.

The reviewer is shown the text and the model's verdict, never the users' labels: a check is blind.

The web app's queue (bot/web) draws through the same functions: it passes `resume=True`, so an item shown but not
answered yet (a reloaded page) comes back instead of being passed over, and `undo_review_label` takes back a
reviewer's last answer, which then comes back too.

Functions flush; the caller commits.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.reviews import MIN_REVIEW_CHARS, is_review
from bot.storage.errors import InvalidDataError
from bot.storage.label_trust import LabelRule, labeller_records, needs_check, record_of, spot_check_draw
from bot.storage.models import Feedback, FeedbackSource, ReviewOutcome, ReviewView, Task, Verdict, utcnow

# The lowest-margin candidates considered for the next item; diversity picks among them.
CANDIDATE_POOL = 50
# Two texts this similar (difflib ratio) count as near-duplicates: never shown one right after the other.
NEAR_DUPLICATE_RATIO = 0.8


@dataclass(frozen=True)
class ReviewItem:
    verdict: Verdict
    remaining: int  # items left for this reviewer, this one included
    disputed: bool = False  # a user's label waits for this answer


def _unlabelled_unseen(
    reviewer_id: int | None, since: datetime, tasks: Sequence[Task], chat_id: int | None = None
):
    """Conditions on unlabelled verdicts; `reviewer_id=None`: unseen by nobody in particular (the whole queue);
    `chat_id`: of that chat only."""
    labelled = exists().where(Feedback.verdict_id == Verdict.id, Feedback.voided_at.is_(None))
    long_enough = Verdict.text_length >= MIN_REVIEW_CHARS  # what is shorter is no review (bot.reviews)
    conditions = [
        Verdict.text.is_not(None),
        long_enough,
        Verdict.created_at >= since,
        Verdict.task.in_([Task(task) for task in tasks]),
        ~labelled,
    ]
    if chat_id is not None:
        conditions.append(Verdict.chat_id == chat_id)
    if reviewer_id is not None:
        conditions.append(
            ~exists().where(ReviewView.verdict_id == Verdict.id, ReviewView.reviewer_id == reviewer_id)
        )
    return tuple(conditions)


async def _count_unlabelled_unseen(
    session: AsyncSession,
    *,
    reviewer_id: int | None,
    since: datetime,
    tasks: Sequence[Task],
    chat_id: int | None = None,
) -> dict[Task, int]:
    """How many verdicts `_unlabelled_unseen` selects, per task: the window's reviewable verdicts (counted from
    the partial index of 0009 alone) less those with a live label (found from the labels, by the verdict's task
    and time copied onto them) less those this reviewer saw without a live label. The same numbers, without an
    anti-join over the whole window."""
    task_values = [Task(task) for task in tasks]
    reviewable = (
        Verdict.text.is_not(None),
        Verdict.text_length >= MIN_REVIEW_CHARS,
        Verdict.created_at >= since,
        Verdict.task.in_(task_values),
        *((Verdict.chat_id == chat_id,) if chat_id is not None else ()),
    )
    counts = dict.fromkeys(task_values, 0)
    window = await session.execute(
        select(Verdict.task, func.count()).where(*reviewable).group_by(Verdict.task)
    )
    labelled = await session.execute(
        select(Feedback.task, func.count(func.distinct(Feedback.verdict_id)))
        .join(Verdict, Verdict.id == Feedback.verdict_id)
        .where(
            Feedback.voided_at.is_(None),
            Feedback.task.in_(task_values),
            Feedback.verdict_created_at >= since,
            *reviewable,
        )
        .group_by(Feedback.task)
    )
    seen = []
    if reviewer_id is not None:
        live_label = exists().where(Feedback.verdict_id == Verdict.id, Feedback.voided_at.is_(None))
        seen = await session.execute(
            select(Verdict.task, func.count())
            .join(ReviewView, ReviewView.verdict_id == Verdict.id)
            .where(ReviewView.reviewer_id == reviewer_id, *reviewable, ~live_label)
            .group_by(Verdict.task)
        )
    for sign, rows in ((1, window), (-1, labelled), (-1, seen)):
        for task, count in rows:
            counts[Task(task)] += sign * int(count)
    return counts


def near_duplicate(a: str, b: str) -> bool:
    a, b = " ".join(a.split()).casefold(), " ".join(b.split()).casefold()
    return a == b or difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_DUPLICATE_RATIO


async def disputed_verdicts(
    session: AsyncSession,
    *,
    reviewer_id: int | None,
    since: datetime,
    rule: LabelRule,
    tasks: Sequence[Task] = tuple(Task),
    chat_id: int | None = None,
) -> list[int]:
    """Verdict ids that wait for this reviewer's check, in the order the queue shows them (`reviewer_id=None`:
    every verdict that waits for a check, whoever has seen it; `chat_id`: of that chat only)."""
    waiting = await _waiting_checks(
        session, reviewer_id=reviewer_id, since=since, rule=rule, tasks=tasks, chat_id=chat_id
    )
    return sorted(waiting, key=lambda verdict_id: waiting[verdict_id][0])


async def _waiting_checks(
    session: AsyncSession,
    *,
    reviewer_id: int | None,
    since: datetime,
    rule: LabelRule,
    tasks: Sequence[Task],
    ordered: bool = True,
    chat_id: int | None = None,
) -> dict[int, tuple[tuple[int, float], Task]]:
    """Verdict id -> (its place in the queue, its task) for each verdict that waits for this reviewer's check;
    without `ordered` (a count), the places are left out."""
    trusted = aliased(Feedback)
    settled = exists().where(
        trusted.verdict_id == Feedback.verdict_id, trusted.trusted.is_(True), trusted.voided_at.is_(None)
    )
    conditions = [
        Feedback.voided_at.is_(None),
        Feedback.trusted.is_(False),
        # the verdict's time and task, as copied onto the label: the labels select their verdicts
        Feedback.verdict_created_at >= since,
        Feedback.task.in_([Task(task) for task in tasks]),
        Verdict.text.is_not(None),
        Verdict.text_length >= MIN_REVIEW_CHARS,  # what is shorter is no review; `is_review` decides the rest
        ~settled,
    ]
    if chat_id is not None:
        conditions.append(Feedback.chat_id == chat_id)  # the verdict's chat, as copied onto the label
    if reviewer_id is not None:
        conditions.append(
            ~exists().where(ReviewView.verdict_id == Verdict.id, ReviewView.reviewer_id == reviewer_id)
        )
    # plain rows, not ORM objects: there are thousands, and `needs_check` reads only id, user and trust
    rows = (
        await session.execute(
            select(
                Feedback.id,
                Feedback.verdict_id,
                Feedback.user_id,
                Feedback.trusted,
                Feedback.task,
                Verdict.text,
            )
            .join(Verdict, Feedback.verdict_id == Verdict.id)
            .where(*conditions)
        )
    ).all()
    if not rows or rule.trust_everyone:  # with every label trusted, none waits for a check
        return {}
    mine = {feedback.verdict_id for feedback in rows if feedback.user_id == reviewer_id}
    records = await labeller_records(session, user_ids={feedback.user_id for feedback in rows})
    waiting: dict[int, tuple[tuple[int, float], Task]] = {}
    for feedback in rows:
        known = waiting.get(feedback.verdict_id)
        if feedback.verdict_id in mine or (known is not None and not ordered):
            continue  # a count needs each verdict once
        if not needs_check(feedback, records, rule) or (known is None and not is_review(feedback.text)):
            continue
        key = (
            (record_of(records, feedback.user_id).checks, spot_check_draw(feedback.id))
            if ordered
            else (0, 0.0)
        )
        if known is None or key < known[0]:
            waiting[feedback.verdict_id] = (key, Task(feedback.task))
    return waiting


async def next_review_item(
    session: AsyncSession,
    *,
    reviewer_id: int,
    since: datetime,
    rule: LabelRule,
    sampled_tasks: Sequence[Task] = tuple(Task),
    disputed_tasks: Sequence[Task] = tuple(Task),
    resume: bool = False,
    chat_id: int | None = None,
) -> ReviewItem | None:
    """Show `reviewer_id` the next item (see the module's docstring) and record that they saw it.

    Disputed verdicts of every task come first (users' labels wait on them, and a labeller's record is one
    across tasks); unlabelled ones are drawn from `sampled_tasks` (by default every task: each one retrains on
    its reviewers' answers).

    Among unlabelled verdicts since `since`, the smallest margin between the top two probabilities comes first,
    with two guards for diversity: the item is not a near-duplicate of the one shown just before, and its
    predicted class differs from that one's whenever such an item is among the most uncertain
    `CANDIDATE_POOL`, so both classes are drawn from.

    `disputed_tasks` limits the disputed verdicts to some tasks and `chat_id` every item to one chat (the web
    queue's filters). With `resume`, the item last shown to this reviewer and not answered yet (of those tasks and
    that chat, within the window) is shown again first.
    """
    disputed = await disputed_verdicts(
        session, reviewer_id=reviewer_id, since=since, rule=rule, tasks=disputed_tasks, chat_id=chat_id
    )
    conditions = _unlabelled_unseen(reviewer_id, since, sampled_tasks, chat_id)
    unlabelled = sum(
        (
            await _count_unlabelled_unseen(
                session, reviewer_id=reviewer_id, since=since, tasks=sampled_tasks, chat_id=chat_id
            )
        ).values()
    )
    remaining = len(disputed) + unlabelled
    if resume:
        shown = await _shown_unanswered(
            session,
            reviewer_id=reviewer_id,
            since=since,
            tasks={*sampled_tasks, *disputed_tasks},
            chat_id=chat_id,
        )
        if shown is not None:
            return ReviewItem(
                verdict=shown, remaining=remaining + 1, disputed=await _waits(session, shown.id)
            )
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


async def _shown_unanswered(
    session: AsyncSession, *, reviewer_id: int, since: datetime, tasks: set[Task], chat_id: int | None
) -> Verdict | None:
    return await session.scalar(
        select(Verdict)
        .join(ReviewView, ReviewView.verdict_id == Verdict.id)
        .where(
            ReviewView.reviewer_id == reviewer_id,
            ReviewView.outcome == ReviewOutcome.SHOWN,
            Verdict.text.is_not(None),
            Verdict.created_at >= since,
            Verdict.task.in_([Task(task) for task in tasks]),
            *((Verdict.chat_id == chat_id,) if chat_id is not None else ()),
        )
        .order_by(ReviewView.updated_at.desc(), ReviewView.id.desc())
        .limit(1)
    )


async def _waits(session: AsyncSession, verdict_id: int) -> bool:
    """Whether users' labels of this verdict wait for a check (no trusted label settled it)."""
    labels = list(
        await session.scalars(
            select(Feedback.trusted).where(Feedback.verdict_id == verdict_id, Feedback.voided_at.is_(None))
        )
    )
    return bool(labels) and not any(labels)


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


async def review_queue_depths(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    since: datetime,
    rule: LabelRule,
    tasks: Sequence[Task] = tuple(Task),
) -> dict[Task, int]:
    """Items of each task waiting in the queue for any reviewer: verdicts whose users' labels wait for a check,
    plus unlabelled recent verdicts (what a reviewer who has seen nothing would be shown). Every task in one pass:
    the labellers' records are read once. The two counts are read at once, each on its own connection (the
    overview and /metrics wait on the slower one only)."""

    async def waiting_checks() -> dict[int, tuple[tuple[int, float], Task]]:
        async with session_factory() as session:
            return await _waiting_checks(
                session, reviewer_id=None, since=since, rule=rule, tasks=tasks, ordered=False
            )

    async def unlabelled() -> dict[Task, int]:
        async with session_factory() as session:
            return await _count_unlabelled_unseen(session, reviewer_id=None, since=since, tasks=tasks)

    async with asyncio.TaskGroup() as reads:  # one failing cancels the other
        waiting_read, unlabelled_read = reads.create_task(waiting_checks()), reads.create_task(unlabelled())
    waiting, depths = waiting_read.result(), unlabelled_read.result()
    for _, task in waiting.values():
        depths[task] += 1
    return depths


async def undo_review_label(session: AsyncSession, *, reviewer_id: int) -> Verdict | None:
    """Take back this reviewer's last label in the queue: its label is deleted and the item counts as shown and
    unanswered again (so `next_review_item(resume=True)` shows it). None when there is no label to take back.

    Raises InvalidDataError when a training run already used the label (it cannot be taken back any more)."""
    view = await session.scalar(
        select(ReviewView)
        .where(ReviewView.reviewer_id == reviewer_id, ReviewView.outcome == ReviewOutcome.LABELLED)
        .order_by(ReviewView.updated_at.desc(), ReviewView.id.desc())
        .limit(1)
    )
    if view is None:
        return None
    label = await session.scalar(
        select(Feedback).where(Feedback.verdict_id == view.verdict_id, Feedback.user_id == reviewer_id)
    )
    if label is not None and label.source is FeedbackSource.REVIEW:
        if label.used_by_run_id is not None:
            raise InvalidDataError(
                f"Training run #{label.used_by_run_id} already used this label; it cannot be taken back."
            )
        await session.delete(label)
    view.outcome = ReviewOutcome.SHOWN
    view.updated_at = utcnow()
    await session.flush()
    return await session.get(Verdict, view.verdict_id)
