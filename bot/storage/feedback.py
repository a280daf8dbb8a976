"""Feedback: people's labels of verdicts (corrections and confirmations) and the training set built from them.

Functions flush; the caller commits."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError, StorageError
from bot.storage.models import Feedback, FeedbackSource, TrainingRun, Verdict, utcnow

# The first key of PostgreSQL's two-key advisory locks taken for label rate limiting ("labl").
LABEL_LOCK_NAMESPACE = 0x6C61626C
# Two untrusted users are in lockstep when at least this share of each one's labels are the same label on the same
# verdict (and at least `lockstep_min_shared` of them): sock puppets or colluders, not independent opinions.
LOCKSTEP_SHARE = 0.8
LOCKSTEP_MIN_SHARED = 10  # the default of LOCKSTEP_MIN_SHARED_LABELS


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
    if await session.get(Verdict, verdict_id) is None:
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
    session: AsyncSession,
    *,
    require_agreement: bool | None = None,
    lockstep_min_shared: int = LOCKSTEP_MIN_SHARED,
) -> int:
    """Live (not voided) labels that no training run has used yet.

    With `require_agreement` given, only labels that `export_human_labels` would train on count, so a lone
    non-admin label that is never exported cannot keep triggering scheduled runs.
    """
    query = (
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.voided_at.is_(None), Feedback.used_by_run_id.is_(None))
    )
    if require_agreement is not None:
        exported = await export_human_labels(
            session, require_agreement=require_agreement, lockstep_min_shared=lockstep_min_shared
        )
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


async def export_human_labels(
    session: AsyncSession, *, require_agreement: bool = True, lockstep_min_shared: int = LOCKSTEP_MIN_SHARED
) -> list[HumanLabel]:
    """Every human label ever given that counts (corrections and confirmations, voided ones left out), one per
    verdict, by this conflict rule:

    - For each verdict, take each user's latest label that is not voided (one row per user).
    - If any trusted label exists (an admin's, or a reviewer's in the review queue), the most recent one wins.
    - Otherwise the majority label among users wins; a tie goes to the most recent label among the tied ones.
    - With `require_agreement=True` (the default for retraining, so that a single user cannot teach the model
      whatever they like), a verdict labelled only by untrusted users counts only if at least two distinct users
      agree on the winning label. Users in lockstep (`lockstep_voices`) count as one voice there, so two colluding
      accounts cannot agree with each other; their labels need a third, independent user or a trusted one.

    Verdicts whose text retention purged are left out (there is nothing to train on). Each HumanLabel lists the
    ids of all live labels of its verdict, which `mark_feedback_used` then records.
    """
    rows = (
        await session.execute(
            select(Feedback, Verdict.text, Verdict.label)
            .join(Verdict, Feedback.verdict_id == Verdict.id)
            .where(Feedback.voided_at.is_(None), Verdict.text.is_not(None))
            .order_by(Feedback.verdict_id, Feedback.id)
        )
    ).all()
    feedback_by_verdict: dict[int, list[Feedback]] = defaultdict(list)
    verdict_of: dict[int, tuple[str, int]] = {}
    for feedback, text, predicted in rows:
        feedback_by_verdict[feedback.verdict_id].append(feedback)
        verdict_of[feedback.verdict_id] = (text, predicted)

    voice_of = lockstep_voices(feedback_by_verdict.values(), min_shared=lockstep_min_shared)
    examples = []
    for verdict_id, feedback_rows in feedback_by_verdict.items():
        label = winning_label(feedback_rows, require_agreement=require_agreement, voice_of=voice_of)
        if label is not None:
            text, predicted = verdict_of[verdict_id]
            examples.append(
                HumanLabel(
                    verdict_id=verdict_id,
                    text=text,
                    label=label,
                    predicted=predicted,
                    trusted=any(feedback.trusted for feedback in feedback_rows),
                    feedback_ids=[feedback.id for feedback in feedback_rows],
                )
            )
    return examples


def lockstep_voices(feedback_by_verdict: Iterable[Sequence[Feedback]], *, min_shared: int) -> dict[int, int]:
    """Untrusted user id -> the id of its voice: itself, or the smallest user id of its lockstep group.

    Two untrusted users are in lockstep when they gave the same label to the same verdict at least `min_shared`
    times and those shared labels are at least `LOCKSTEP_SHARE` of each one's labels. Independent people overlap
    now and then; accounts that label together almost always are one voice. Lockstep is transitive (groups).
    `min_shared=0` turns the rule off.
    """
    labels_of: Counter[int] = Counter()
    shared: Counter[tuple[int, int]] = Counter()
    for feedback_rows in feedback_by_verdict:
        untrusted = sorted((f.user_id, f.label) for f in feedback_rows if not f.trusted)
        labels_of.update(user for user, _ in untrusted)
        for index, (user, label) in enumerate(untrusted):
            for other, other_label in untrusted[index + 1 :]:
                if label == other_label:
                    shared[(user, other)] += 1
    voice_of = {user: user for user in labels_of}
    if min_shared <= 0:
        return voice_of

    def root(user: int) -> int:
        while voice_of[user] != user:
            user = voice_of[user]
        return user

    for (user, other), count in shared.items():
        if count >= min_shared and count >= LOCKSTEP_SHARE * max(labels_of[user], labels_of[other]):
            first, second = sorted((root(user), root(other)))
            voice_of[second] = first
    return {user: root(user) for user in voice_of}


def winning_label(
    feedback_rows: Sequence[Feedback], *, require_agreement: bool, voice_of: dict[int, int] | None = None
) -> int | None:
    """The label one verdict's live labels (one per user) settle on, or None; see `export_human_labels`.

    `voice_of` (from `lockstep_voices`) decides how many distinct voices agree; by default each user is one."""
    if not feedback_rows:
        return None

    def recency(feedback: Feedback) -> tuple[datetime, int]:
        return feedback.updated_at, feedback.id

    trusted_rows = [feedback for feedback in feedback_rows if feedback.trusted]
    if trusted_rows:
        return max(trusted_rows, key=recency).label
    votes = Counter(feedback.label for feedback in feedback_rows)
    top_count = max(votes.values())
    tied_labels = {label for label, count in votes.items() if count == top_count}
    label = max((feedback for feedback in feedback_rows if feedback.label in tied_labels), key=recency).label
    if require_agreement:
        voices = {(voice_of or {}).get(f.user_id, f.user_id) for f in feedback_rows if f.label == label}
        if len(voices) < 2:
            return None
    return label
