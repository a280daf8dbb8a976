"""What the operator web app's overview and chat list show: counts per UTC day over a bounded window, grouped in
SQL (SQLite and PostgreSQL alike), read with the indexes of migrations 0008 and 0009. Read-only.

Verdicts per day come from the rollup `verdict_day_counts` (kept by `add_verdict`); labels per day read the labels
alone, with the verdict's task, chat, message and label copied onto each (0009).

Every function takes `since` (the window's start) so that no query reads more than the window; `chat_id`
narrows it to one chat. Days come back as `datetime.date` on both backends.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import and_, case, exists, func, literal, select, text, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import String

from bot.storage.models import (
    ChatPolicy,
    Feedback,
    FeedbackSource,
    MessageReport,
    ModerationAction,
    ModerationDecision,
    Task,
    Verdict,
    VerdictDayCount,
)

# The kinds of human labels the overview counts, each label once (the first that applies, in this order).
REVIEW = "review"  # given in the review queue
ADMIN_DECISION = "admin_decision"  # a group admin's answer to a log entry (되돌리기 / 맞아요 / 추방)
REPORT = "report"  # a member's /report of a group message
CONFIRMATION = "confirmation"  # equal to the verdict (맞아요, /feedback)
CORRECTION = "correction"  # differs from the verdict
LABEL_KINDS = (CORRECTION, CONFIRMATION, REVIEW, ADMIN_DECISION, REPORT)


class utc_day(FunctionElement):
    """The UTC calendar day of a timestamp column ('YYYY-MM-DD' text on SQLite, a DATE on PostgreSQL)."""

    type = String()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element, compiler, **kw):  # SQLite stores UTC text: date() reads its first 10 characters
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element, compiler, **kw):  # timestamptz -> its UTC day, whatever the session's zone
    return f"CAST(({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC') AS DATE)"


async def _without_jit(session: AsyncSession) -> None:
    """PostgreSQL's JIT compiles these short aggregates for ~100 ms and saves less: off for this transaction."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))


def _day(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def verdicts_per_day(
    session: AsyncSession, *, task: Task, since: datetime | date, chat_id: int | None = None
) -> dict[date, dict[str, int]]:
    """Verdicts of the task per UTC day and label name, from the UTC day of `since` on: read from the rollup
    `verdict_day_counts` (a few rows per day and chat), which counts whole days."""
    first = since.astimezone(UTC).date() if isinstance(since, datetime) else since
    query = select(VerdictDayCount.day, VerdictDayCount.label_name, func.sum(VerdictDayCount.count)).where(
        VerdictDayCount.task == Task(task), VerdictDayCount.day >= first
    )
    if chat_id is not None:
        query = query.where(VerdictDayCount.chat_id == chat_id)
    rows = await session.execute(query.group_by(VerdictDayCount.day, VerdictDayCount.label_name))
    counts: dict[date, dict[str, int]] = defaultdict(dict)
    for raw_day, label_name, count in rows:
        counts[_day(raw_day)][label_name] = int(count)
    return dict(counts)


def _label_kind() -> ColumnElement[str]:
    by_group_admin = exists().where(
        ModerationDecision.verdict_id == Feedback.verdict_id, ModerationDecision.admin_id == Feedback.user_id
    )
    by_reporter = exists().where(
        MessageReport.chat_id == Feedback.chat_id,
        MessageReport.message_id == Feedback.message_id,
        MessageReport.reporter_id == Feedback.user_id,
    )
    return case(
        (Feedback.source == FeedbackSource.REVIEW, literal(REVIEW)),
        (by_group_admin, literal(ADMIN_DECISION)),
        (by_reporter, literal(REPORT)),
        (Feedback.label == Feedback.verdict_label, literal(CONFIRMATION)),
        else_=literal(CORRECTION),
    )


@dataclass(frozen=True)
class LabelDay:
    by_kind: dict[str, int]
    agreed: int  # labels equal to the verdict of the model that served it
    total: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.total if self.total else None


async def labels_per_day(
    session: AsyncSession, *, task: Task, since: datetime, chat_id: int | None = None
) -> dict[date, LabelDay]:
    """People's live (not voided) labels of the task's verdicts per UTC day they were given, by kind, and how many
    agree with the verdict: the served model's accuracy as its users see it."""
    day = utc_day(Feedback.created_at)
    kind = _label_kind()
    agreed = func.sum(case((Feedback.label == Feedback.verdict_label, 1), else_=0))
    query = (
        select(day, kind, func.count(), agreed)
        .select_from(Feedback)
        .where(Feedback.task == Task(task), Feedback.created_at >= since, Feedback.voided_at.is_(None))
    )
    if chat_id is not None:
        query = query.where(Feedback.chat_id == chat_id)
    await _without_jit(session)
    rows = await session.execute(query.group_by(day, kind))
    kinds: dict[date, dict[str, int]] = defaultdict(dict)
    totals: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for raw_day, label_kind, count, agreeing in rows:
        the_day = _day(raw_day)
        kinds[the_day][label_kind] = int(count)
        totals[the_day][0] += int(agreeing or 0)
        totals[the_day][1] += int(count)
    return {the_day: LabelDay(kinds[the_day], *totals[the_day]) for the_day in kinds}


async def actions_per_chat(
    session: AsyncSession, *, since: datetime, chat_id: int | None = None
) -> dict[int, dict[str, int]]:
    """Telegram actions decided per group since `since`: chat id -> {"<kind>/<status>": count}."""
    query = select(
        ModerationAction.chat_id, ModerationAction.kind, ModerationAction.status, func.count()
    ).where(ModerationAction.created_at >= since)
    if chat_id is not None:
        query = query.where(ModerationAction.chat_id == chat_id)
    rows = await session.execute(
        query.group_by(ModerationAction.chat_id, ModerationAction.kind, ModerationAction.status)
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for chat, kind, status, count in rows:
        counts[int(chat)][f"{kind.value}/{status.value}"] = int(count)
    return dict(counts)


async def known_group_ids(session: AsyncSession) -> list[int]:
    """Groups the moderator knows: those with a policy or with decisions, in id order."""
    rows = await session.scalars(
        union(select(ChatPolicy.chat_id), select(ModerationDecision.chat_id)).order_by("chat_id")
    )
    return [int(chat_id) for chat_id in rows]


async def chat_decisions(
    session: AsyncSession, *, chat_id: int, limit: int = 100, before_id: int | None = None
) -> list[tuple[ModerationDecision, Verdict | None]]:
    """The chat's newest decisions (with their actions) and the verdicts they were taken on, newest first."""
    query = (
        select(ModerationDecision, Verdict)
        .outerjoin(Verdict, Verdict.id == ModerationDecision.verdict_id)
        .where(ModerationDecision.chat_id == chat_id)
    )
    if before_id is not None:
        query = query.where(ModerationDecision.id < before_id)
    rows = await session.execute(query.order_by(ModerationDecision.id.desc()).limit(limit))
    return [(decision, verdict) for decision, verdict in rows]


@dataclass(frozen=True)
class LabellerTotals:
    user_id: int
    labels: int  # live labels
    voided: int
    trusted: int
    last_at: datetime | None


async def labeller_totals(session: AsyncSession, *, limit: int = 50, offset: int = 0) -> list[LabellerTotals]:
    """Per person who labelled: live, voided and trusted labels and when they last labelled; the busiest first
    (then by user id), `limit` of them from `offset` (one page)."""
    live = func.sum(case((Feedback.voided_at.is_(None), 1), else_=0))
    rows = await session.execute(
        select(
            Feedback.user_id,
            live,
            func.sum(case((Feedback.voided_at.is_not(None), 1), else_=0)),
            func.sum(case((and_(Feedback.trusted.is_(True), Feedback.voided_at.is_(None)), 1), else_=0)),
            func.max(Feedback.created_at),
        )
        .group_by(Feedback.user_id)
        .order_by(live.desc(), Feedback.user_id)
        .limit(limit)
        .offset(offset)
    )
    return [
        LabellerTotals(int(user), int(labels or 0), int(voided or 0), int(trusted or 0), _aware(last))
        for user, labels, voided, trusted, last in rows
    ]


# Two people who labelled at least this many of the same verdicts, and gave the same label to this share of them,
# are shown as moving in lockstep (for the operator to look at; the label rule does not silence them).
LOCKSTEP_MIN_SHARED = 10
LOCKSTEP_MIN_SAME = 0.95


@dataclass(frozen=True)
class LabellerAgreement:
    user_id: int
    # (verdict, other person) pairs: each other person's live label on a verdict this person labelled
    shared: int
    same: int  # of those, the same label
    # (other person, shared verdicts, same labels) of those moving in lockstep with this person, most shared first
    lockstep: tuple[tuple[int, int, int], ...]

    @property
    def rate(self) -> float | None:
        return self.same / self.shared if self.shared else None


async def labeller_agreement(session: AsyncSession, *, user_ids: list[int]) -> dict[int, LabellerAgreement]:
    """For each of `user_ids`: how often their live labels match other people's live labels on the same verdicts,
    and the people they move in lockstep with (`LOCKSTEP_MIN_SHARED`, `LOCKSTEP_MIN_SAME`). One grouped self-join
    of the labels, through the (verdict, user) unique index; only these people's labels are joined."""
    if not user_ids:
        return {}
    mine, other = aliased(Feedback), aliased(Feedback)
    rows = await session.execute(
        select(
            mine.user_id,
            other.user_id,
            func.count(),
            func.sum(case((mine.label == other.label, 1), else_=0)),
        )
        .join(other, and_(other.verdict_id == mine.verdict_id, other.user_id != mine.user_id))
        .where(mine.user_id.in_(user_ids), mine.voided_at.is_(None), other.voided_at.is_(None))
        .group_by(mine.user_id, other.user_id)
    )
    pairs: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for user, partner, shared, same in rows:
        pairs[int(user)].append((int(partner), int(shared), int(same or 0)))
    agreement = {}
    for user in user_ids:
        partners = pairs.get(user, [])
        lockstep = sorted(
            (
                pair
                for pair in partners
                if pair[1] >= LOCKSTEP_MIN_SHARED and pair[2] >= LOCKSTEP_MIN_SAME * pair[1]
            ),
            key=lambda pair: (-pair[1], pair[0]),
        )
        agreement[user] = LabellerAgreement(
            user,
            sum(shared for _, shared, _ in partners),
            sum(same for _, _, same in partners),
            tuple(lockstep),
        )
    return agreement


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # an aggregate over a UTC text column on SQLite
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def is_known_group(session: AsyncSession, *, chat_id: int) -> bool:
    """Whether the chat has a policy or a decision (a group the moderator knows)."""
    if await session.get(ChatPolicy, chat_id) is not None:
        return True
    return (
        await session.scalar(
            select(ModerationDecision.id).where(ModerationDecision.chat_id == chat_id).limit(1)
        )
    ) is not None
