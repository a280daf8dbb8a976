"""What the web app's pages read instead of scanning (migration 0009) equals its definition, on SQLite and
PostgreSQL: the verdicts-per-day rollup, the verdict's columns copied onto each label, the review queue's count
and the labellers' records, after inserts, changed labels, voids and undo; and the migration fills them right
from rows written before it."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import MetaData, func, insert, select, update
from storage_helpers import insert_verdict

from bot import storage
from bot.storage import FeedbackSource, LabelRule, ReviewOutcome, Task
from bot.storage.models import (
    Feedback,
    MessageReport,
    ModerationDecision,
    ReviewView,
    Verdict,
    VerdictDayCount,
)
from bot.storage.review_queue import _count_unlabelled_unseen, _unlabelled_unseen, disputed_verdicts

NOW = datetime.now(UTC)
TOXIC = {"정상": 0.2, "공격적": 0.8}


async def verdict_at(monkeypatch, session_factory, moment: datetime, **fields) -> Verdict:
    with monkeypatch.context() as patch:
        patch.setattr("bot.storage.verdicts.utcnow", lambda: moment)
        return await insert_verdict(session_factory, **fields)


async def label(session_factory, verdict_id: int, user_id: int, value: int, **extra) -> None:
    async with session_factory() as session, session.begin():
        await storage.record_feedback(
            session,
            verdict_id=verdict_id,
            user_id=user_id,
            label=value,
            num_labels=2,
            is_admin=False,
            **extra,
        )


async def rollup(session) -> dict[tuple, int]:
    rows = await session.execute(select(VerdictDayCount))
    return {(str(r.task), r.day, r.chat_id, r.label_name): r.count for r in rows.scalars() if r.count}


async def rollup_by_definition(session) -> dict[tuple, int]:
    counts: Counter[tuple] = Counter()
    for verdict in await session.scalars(select(Verdict)):
        counts[
            (
                str(verdict.task),
                verdict.created_at.astimezone(UTC).date(),
                verdict.chat_id,
                verdict.label_name,
            )
        ] += 1
    return dict(counts)


async def copies_that_differ(session) -> list[int]:
    """Labels whose copied columns differ from their verdict's."""
    rows = await session.execute(select(Feedback, Verdict).join(Verdict, Verdict.id == Feedback.verdict_id))
    return [
        feedback.id
        for feedback, verdict in rows
        if (
            feedback.task,
            feedback.chat_id,
            feedback.message_id,
            feedback.verdict_label,
            feedback.verdict_created_at,
        )
        != (verdict.task, verdict.chat_id, verdict.message_id, verdict.label, verdict.created_at)
    ]


async def labels_by_definition(session, *, task: Task, since: datetime, chat_id: int | None = None) -> dict:
    """Labels per day by kind and agreement, from the verdicts themselves (the overview's definition)."""
    decisions = {(d.verdict_id, d.admin_id) for d in await session.scalars(select(ModerationDecision))}
    reports = {(r.chat_id, r.message_id, r.reporter_id) for r in await session.scalars(select(MessageReport))}
    kinds: dict[date, Counter] = defaultdict(Counter)
    agreed: Counter[date] = Counter()
    rows = await session.execute(select(Feedback, Verdict).join(Verdict, Verdict.id == Feedback.verdict_id))
    for feedback, verdict in rows:
        if feedback.voided_at is not None or feedback.created_at < since or verdict.task != task:
            continue
        if chat_id is not None and verdict.chat_id != chat_id:
            continue
        if feedback.source == FeedbackSource.REVIEW:
            kind = "review"
        elif (verdict.id, feedback.user_id) in decisions:
            kind = "admin_decision"
        elif (verdict.chat_id, verdict.message_id, feedback.user_id) in reports:
            kind = "report"
        else:
            kind = "confirmation" if feedback.label == verdict.label else "correction"
        day = feedback.created_at.astimezone(UTC).date()
        kinds[day][kind] += 1
        agreed[day] += int(feedback.label == verdict.label)
    return {day: (dict(counts), agreed[day], sum(counts.values())) for day, counts in kinds.items()}


async def records_by_definition(session) -> dict[int, tuple[int, int]]:
    """Each untrusted labeller's (checks, agreed) against the most recent live trusted label of each verdict."""
    live = list(await session.scalars(select(Feedback).where(Feedback.voided_at.is_(None))))
    gold: dict[int, Feedback] = {}
    for feedback in live:
        if feedback.trusted and (
            feedback.verdict_id not in gold
            or (feedback.updated_at, feedback.id)
            > (gold[feedback.verdict_id].updated_at, gold[feedback.verdict_id].id)
        ):
            gold[feedback.verdict_id] = feedback
    checks: Counter[int] = Counter()
    agreed: Counter[int] = Counter()
    for feedback in live:
        if not feedback.trusted and feedback.verdict_id in gold:
            checks[feedback.user_id] += 1
            agreed[feedback.user_id] += int(feedback.label == gold[feedback.verdict_id].label)
    return {user: (checks[user], agreed[user]) for user in checks}


async def assert_everything_matches(session_factory, *, since: datetime, reviewers=(None, 500)) -> None:
    async with session_factory() as session:
        assert await rollup(session) == await rollup_by_definition(session)
        assert await copies_that_differ(session) == []
        for task in Task:
            for chat_id in (None, -1, -2):
                got = await storage.labels_per_day(session, task=task, since=since, chat_id=chat_id)
                expected = await labels_by_definition(session, task=task, since=since, chat_id=chat_id)
                assert {d: (v.by_kind, v.agreed, v.total) for d, v in got.items()} == expected
            for reviewer in reviewers:  # the queue's count against the slow-but-obvious one
                obvious = await session.scalar(
                    select(func.count())
                    .select_from(Verdict)
                    .where(*_unlabelled_unseen(reviewer, since, (task,)))
                )
                fast = await _count_unlabelled_unseen(
                    session, reviewer_id=reviewer, since=since, tasks=tuple(Task)
                )
                assert fast[task] == obvious, (task, reviewer)
        records = await storage.labeller_records(session)
        assert {u: (r.checks, r.agreed) for u, r in records.items()} == await records_by_definition(session)
        some = await storage.labeller_records(session, user_ids=[601, 999])
        assert {u: (r.checks, r.agreed) for u, r in some.items()} == {
            u: v for u, v in (await records_by_definition(session)).items() if u in (601, 999)
        }


async def test_the_rollup_copies_and_queue_count_equal_their_definitions(
    session_factory, monkeypatch, record_strike
):
    sf = session_factory
    since = NOW - timedelta(days=14)
    moments = [NOW - timedelta(days=20), NOW - timedelta(days=3, hours=1), NOW - timedelta(hours=2), NOW]
    verdicts = []
    for index in range(12):
        moment = moments[index % len(moments)]
        fields = {"chat_id": -1 - index % 2, "message_id": index, "label": index % 2}
        fields["label_name"] = ("부정", "긍정")[index % 2]
        if index % 3 == 2:
            fields.update(task=Task.TOXICITY, label_name=("정상", "공격적")[index % 2], probabilities=TOXIC)
        if index == 5:
            fields["text"] = "짧아"  # too short to be a review: never in the queue
        verdicts.append(await verdict_at(monkeypatch, sf, moment, **fields))
    again = await verdict_at(monkeypatch, sf, NOW, chat_id=-1, message_id=0, label=0, label_name="부정")
    assert again.id == verdicts[0].id  # a repeat counts nothing
    await assert_everything_matches(sf, since=since)

    for index, verdict in enumerate(verdicts[:9]):
        await label(sf, verdict.id, 600 + index % 3, (index + 1) % 2)
    await label(sf, verdicts[1].id, 700, 1, trusted=True, source=FeedbackSource.REVIEW)
    await label(sf, verdicts[2].id, 700, 0, trusted=True, source=FeedbackSource.REVIEW)
    await label(sf, verdicts[4].id, 701, 1, trusted=True)
    await label(sf, verdicts[1].id, 601, 0)  # a changed label
    async with sf() as session, session.begin():
        decision = await record_strike(
            session,
            chat_id=verdicts[2].chat_id,
            message_id=verdicts[2].message_id,
            verdict_id=verdicts[2].id,
        )
        await storage.record_admin_decision(session, decision=decision, answer="right", admin_id=602)
        await storage.record_report(
            session,
            chat_id=verdicts[5].chat_id,
            message_id=verdicts[5].message_id,
            reporter_id=600,
            hourly_limit=9,
        )
        session.add(ReviewView(reviewer_id=500, verdict_id=verdicts[10].id, outcome=ReviewOutcome.SKIPPED))
        session.add(ReviewView(reviewer_id=500, verdict_id=verdicts[3].id, outcome=ReviewOutcome.SHOWN))
    await assert_everything_matches(sf, since=since)

    async with sf() as session, session.begin():
        await storage.void_feedback_of_user(session, user_id=600, voided_by=1)
        await session.execute(update(Verdict).where(Verdict.id == verdicts[7].id).values(text=None))  # purged
    await assert_everything_matches(sf, since=since)

    async with sf() as session, session.begin():  # a reviewer answers in the queue, then takes it back
        item = await storage.next_review_item(session, reviewer_id=501, since=since, rule=LabelRule())
    assert item is not None
    await label(sf, item.verdict.id, 501, 1, trusted=True, source=FeedbackSource.REVIEW)
    async with sf() as session, session.begin():
        await storage.record_review_outcome(
            session, reviewer_id=501, verdict_id=item.verdict.id, outcome=ReviewOutcome.LABELLED
        )
    await assert_everything_matches(sf, since=since, reviewers=(None, 500, 501))
    async with sf() as session, session.begin():
        assert await storage.undo_review_label(session, reviewer_id=501) is not None
    await assert_everything_matches(sf, since=since, reviewers=(None, 500, 501))

    rule = LabelRule()
    depths = await storage.review_queue_depths(sf, since=since, rule=rule)
    async with sf() as session:  # the depth is the number the queue serves
        for task in Task:
            disputed = await disputed_verdicts(
                session, reviewer_id=None, since=since, rule=rule, tasks=(task,)
            )
            obvious = await session.scalar(
                select(func.count()).select_from(Verdict).where(*_unlabelled_unseen(None, since, (task,)))
            )
            assert depths[task] == len(disputed) + obvious


async def test_migration_0009_fills_the_rollup_and_the_copies(database_url):
    await asyncio.to_thread(storage.upgrade_database, database_url, "0008")
    engine = storage.create_engine(database_url)
    midnight = datetime(2026, 11, 30, tzinfo=UTC)
    try:
        metadata = MetaData()
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: metadata.reflect(sync))
            tables = metadata.tables
            rows = []
            for index in range(10):
                moment = midnight + timedelta(minutes=-30 + 15 * index)  # both sides of a UTC midnight
                task = "toxicity" if index % 4 == 3 else "sentiment"
                rows.append(
                    {
                        "task": task,
                        "chat_id": -1 - index % 2,
                        "message_id": index,
                        "user_id": 7,
                        "text": "배우들 연기가 정말 좋았어요",
                        "text_length": 15,
                        "label": index % 2,
                        "label_name": ("부정", "긍정")[index % 2],
                        "confidence": 0.8,
                        "probabilities": {"부정": 0.2, "긍정": 0.8},
                        "margin": 0.6,
                        "created_at": moment,
                    }
                )
            await connection.execute(insert(tables["verdicts"]), rows)
            ids = list(await connection.scalars(select(tables["verdicts"].c.id).order_by("id")))
            await connection.execute(
                insert(tables["feedback"]),
                [
                    {
                        "verdict_id": verdict_id,
                        "user_id": 600 + index,
                        "label": 1,
                        "is_admin": False,
                        "trusted": False,
                        "source": "button",
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for index, verdict_id in enumerate(ids[::2])
                ],
            )
        await asyncio.to_thread(storage.upgrade_database, database_url)
        session_factory = storage.make_session_factory(engine)
        async with session_factory() as session:
            assert await rollup(session) == await rollup_by_definition(session)
            assert sum((await rollup(session)).values()) == 10
            assert await copies_that_differ(session) == []
            assert len(list(await session.scalars(select(Feedback)))) == 5
            per_day = await storage.verdicts_per_day(
                session, task=Task.SENTIMENT, since=midnight - timedelta(days=1)
            )
            assert set(per_day) == {date(2026, 11, 29), date(2026, 11, 30)}
            assert per_day[date(2026, 11, 29)] == {"부정": 1, "긍정": 1}
    finally:
        await engine.dispose()
