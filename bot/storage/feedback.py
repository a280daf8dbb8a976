"""Feedback: people's labels of verdicts (corrections and confirmations) and the training set built from them.

Functions flush; the caller commits."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.reviews import is_review
from bot.storage.errors import InvalidDataError, StorageError
from bot.storage.label_trust import LabelRule, Standing, labeller_records, record_of, settle
from bot.storage.models import Feedback, FeedbackSource, Task, TrainingRun, Verdict, utcnow

# The first key of PostgreSQL's two-key advisory locks taken for label rate limiting ("labl").
LABEL_LOCK_NAMESPACE = 0x6C61626C


@dataclass(frozen=True)
class HumanLabel:
    """One training example from people: the verdict's text and the label they settled on.

    `predicted` is the bot's verdict: a label equal to it is a confirmation, any other a correction.
    """

    verdict_id: int
    text: str
    label: int
    predicted: int | None = None
    trusted: bool = False  # an admin's or a reviewer's label decided it
    feedback_ids: list[int] = field(default_factory=list)  # every live label of this verdict considered

    @property
    def is_confirmation(self) -> bool:
        return self.label == self.predicted


class RateLimitedError(StorageError):
    """The user reached their hourly label limit; nothing was written."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"At most {limit} labels an hour; try again later.")


async def record_feedback(
    session: AsyncSession,
    *,
    verdict_id: int,
    user_id: int,
    label: int,
    num_labels: int,
    is_admin: bool,
    trusted: bool | None = None,
    source: FeedbackSource = FeedbackSource.BUTTON,
    hourly_limit: int | None = None,
) -> tuple[Feedback, bool]:
    """Record `user_id`'s label for a verdict (a correction, or a confirmation when it equals the verdict);
    returns (row, changed).

    A user has one label per verdict: a newer one replaces the older in place (changed is False when the label is
    the same). A changed label is no longer "used" by any run, so it counts towards the next retraining. A label
    an admin voided stays voided when its author sends it again. `trusted` (default: `is_admin`) marks labels that
    count without a second opinion. With `hourly_limit`, an untrusted user who already gave that many labels in
    the last hour gets `RateLimitedError`; the check and the write are atomic per user on every backend.
    Raises InvalidDataError (writing nothing) for a label outside [0, num_labels) or a missing verdict.
    """
    trusted = is_admin if trusted is None else trusted
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_labels:
        raise InvalidDataError(f"Unknown label {label!r}: expected an id from 0 to {num_labels - 1}.")
    verdict = await session.get(Verdict, verdict_id)
    if verdict is None:
        raise InvalidDataError(f"Verdict {verdict_id} does not exist, so it cannot be corrected.")
    if hourly_limit is not None and not trusted:
        await _lock_labels_of_user(session, user_id=user_id)
        recent = await count_feedback_by_user_since(
            session, user_id=user_id, since=utcnow() - timedelta(hours=1)
        )
        if recent >= hourly_limit:
            raise RateLimitedError(hourly_limit)

    existing = await _feedback_of(session, verdict_id=verdict_id, user_id=user_id)
    if existing is None:
        now = utcnow()
        feedback = Feedback(
            verdict_id=verdict_id,
            task=verdict.task,
            chat_id=verdict.chat_id,
            message_id=verdict.message_id,
            verdict_label=verdict.label,
            verdict_created_at=verdict.created_at,
            user_id=user_id,
            label=label,
            is_admin=is_admin,
            trusted=trusted,
            source=FeedbackSource(source),
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
    return await _replace_feedback(
        session, existing, label=label, is_admin=is_admin, trusted=trusted, source=FeedbackSource(source)
    )


async def _lock_labels_of_user(session: AsyncSession, *, user_id: int) -> None:
    """Serialise one user's label writers until the transaction ends, so count-then-insert is exact.

    SQLite transactions already hold the database's write lock from their first statement (`BEGIN IMMEDIATE`);
    PostgreSQL gets a transaction-scoped advisory lock keyed by the user id.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(LABEL_LOCK_NAMESPACE, user_id % 2**31)))


async def _replace_feedback(
    session: AsyncSession,
    feedback: Feedback,
    *,
    label: int,
    is_admin: bool,
    trusted: bool,
    source: FeedbackSource,
) -> tuple[Feedback, bool]:
    changed = feedback.label != label
    feedback.updated_at = utcnow()
    feedback.is_admin = is_admin
    feedback.trusted = trusted
    feedback.source = source
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
    """How many labels `user_id` gave (new or replaced) since `since` (for rate limiting)."""
    count = await session.scalar(
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.user_id == user_id, Feedback.updated_at >= since)
    )
    return int(count or 0)


async def void_feedback_of_user(session: AsyncSession, *, user_id: int, voided_by: int) -> int:
    """Void every live label of `user_id` (an admin's decision); returns how many were voided."""
    result = await session.execute(
        update(Feedback)
        .where(Feedback.user_id == user_id, Feedback.voided_at.is_(None))
        .values(voided_at=utcnow(), voided_by=voided_by)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)


async def count_unused_feedback(
    session: AsyncSession, *, rule: LabelRule | None = None, task: Task = Task.SENTIMENT
) -> int:
    """Live (not voided) labels of the task's verdicts that no training run has used yet.

    With `rule` given, only labels that `export_human_labels` would train on count, so labels that wait for a
    reviewer (or cannot count) do not keep triggering scheduled runs.
    """
    query = (
        select(func.count())
        .select_from(Feedback)
        .join(Verdict, Feedback.verdict_id == Verdict.id)
        .where(Feedback.voided_at.is_(None), Feedback.used_by_run_id.is_(None), Verdict.task == Task(task))
    )
    if rule is not None:
        exported = await export_human_labels(session, rule=rule, task=task)
        feedback_ids = [feedback_id for example in exported for feedback_id in example.feedback_ids]
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


async def live_labels_by_verdict(
    session: AsyncSession, *, task: Task | None
) -> tuple[dict[int, list[Feedback]], dict[int, Verdict]]:
    """Every live label of every verdict (of `task`; None: of every task) that still has its text and is a
    review, grouped by verdict."""
    query = (
        select(Feedback, Verdict)
        .join(Verdict, Feedback.verdict_id == Verdict.id)
        .where(Feedback.voided_at.is_(None), Verdict.text.is_not(None))
        .order_by(Feedback.verdict_id, Feedback.id)
    )
    if task is not None:
        query = query.where(Verdict.task == Task(task))
    rows = (await session.execute(query)).all()
    feedback_by_verdict: dict[int, list[Feedback]] = defaultdict(list)
    verdicts: dict[int, Verdict] = {}
    for feedback, verdict in rows:
        # Labels obey the rule training rows obey: what is too short to be a review is never trained on.
        if is_review(verdict.text or ""):
            feedback_by_verdict[feedback.verdict_id].append(feedback)
            verdicts[verdict.id] = verdict
    return feedback_by_verdict, verdicts


async def export_human_labels(
    session: AsyncSession, *, rule: LabelRule, task: Task = Task.SENTIMENT
) -> list[HumanLabel]:
    """Every human label of the task's verdicts ever given that counts (corrections and confirmations, voided
    ones left out), one per verdict. Per verdict, each user's latest label that is not voided counts once; `bot.storage.label_trust.settle`
    decides: the most recent trusted label wins; otherwise only labellers whose spot checks earned them trust
    count (unless `rule.trust_everyone`).

    Verdicts whose text retention purged, or that are not reviews, are left out. Each HumanLabel lists the ids of
    all live labels of its verdict, which `mark_feedback_used` then records.
    """
    feedback_by_verdict, verdicts = await live_labels_by_verdict(session, task=task)
    records = await labeller_records(session)
    examples = []
    for verdict_id, feedback_rows in feedback_by_verdict.items():
        label = settle(feedback_rows, records, rule)
        if label is not None:
            verdict = verdicts[verdict_id]
            examples.append(
                HumanLabel(
                    verdict_id=verdict_id,
                    text=verdict.text or "",
                    label=label,
                    predicted=verdict.label,
                    trusted=any(feedback.trusted for feedback in feedback_rows),
                    feedback_ids=[feedback.id for feedback in feedback_rows],
                )
            )
    return examples


@dataclass(frozen=True)
class LabelBacklog:
    """Untrusted labels that do not count now, on verdicts no trusted label settled."""

    waiting: int  # their authors are unproven: a reviewer's answer settles them (and builds a record)
    not_counting: int  # their authors' spot checks went badly


async def label_backlog(session: AsyncSession, *, rule: LabelRule) -> LabelBacklog:
    if rule.trust_everyone:
        return LabelBacklog(0, 0)
    feedback_by_verdict, _ = await live_labels_by_verdict(session, task=None)  # every task's
    records = await labeller_records(session)
    counts: Counter[Standing] = Counter()
    for feedback_rows in feedback_by_verdict.values():
        if any(feedback.trusted for feedback in feedback_rows):
            continue
        counts.update(record_of(records, feedback.user_id).standing(rule) for feedback in feedback_rows)
    return LabelBacklog(waiting=counts[Standing.UNPROVEN], not_counting=counts[Standing.FAILING])


async def labeller_standing(session: AsyncSession, *, user_id: int, rule: LabelRule) -> Standing:
    """Where an untrusted user's labels stand now (see `bot.storage.label_trust`)."""
    if rule.trust_everyone:
        return Standing.EARNED
    records = await labeller_records(session, user_ids=[user_id])
    return record_of(records, user_id).standing(rule)
