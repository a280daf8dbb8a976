"""The review queue: disputed verdicts first (tests/storage/test_label_trust.py), then least certain first, both
classes, no near-duplicates in a row, never an item twice."""

from __future__ import annotations

from datetime import timedelta

from storage_helpers import insert_verdict

from bot.storage import (
    FeedbackSource,
    LabelRule,
    ReviewOutcome,
    Task,
    next_review_item,
    record_feedback,
    record_review_outcome,
)
from bot.storage.models import utcnow

REVIEWER = 500
SINCE = timedelta(days=14)


async def add(session_factory, message_id, text, positive):
    """A verdict whose top probability is `positive` (긍정) or 1 - positive (부정)."""
    label = int(positive >= 0.5)
    return await insert_verdict(
        session_factory,
        message_id=message_id,
        text=text,
        label=label,
        label_name=["부정", "긍정"][label],
        confidence=max(positive, 1 - positive),
        probabilities={"부정": 1 - positive, "긍정": positive},
    )


async def next_item(session_factory, reviewer=REVIEWER):
    async with session_factory() as session, session.begin():
        return await next_review_item(session, reviewer_id=reviewer, since=utcnow() - SINCE, rule=LabelRule())


async def test_least_certain_first_alternating_classes_and_never_twice(session_factory):
    # 긍정 verdicts are the least certain ones; a plain margin order would show three 긍정 in a row.
    rows = [
        await add(session_factory, 1, "배우 연기가 좋았다 추천", 0.52),  # margin 0.04
        await add(session_factory, 2, "음악이 정말 좋았어요", 0.55),  # 0.10
        await add(session_factory, 3, "영상미가 멋진 영화", 0.58),  # 0.16
        await add(session_factory, 4, "지루하고 길었다", 0.35),  # 부정, margin 0.30
        await add(session_factory, 5, "돈 아까운 영화", 0.10),  # 부정, 0.80
        await add(session_factory, 6, "완벽한 걸작", 0.99),  # 0.98
    ]
    shown = []
    while (item := await next_item(session_factory)) is not None:
        shown.append((item.verdict.id, item.verdict.label, item.remaining))
    ids = {row.id: index + 1 for index, row in enumerate(rows)}
    order = [ids[verdict_id] for verdict_id, _, _ in shown]
    assert order == [1, 4, 2, 5, 3, 6]  # margin order, alternating 긍정/부정 while both are left
    assert [remaining for _, _, remaining in shown] == [6, 5, 4, 3, 2, 1]
    assert {label for _, label, _ in shown[:2]} == {0, 1}
    assert await next_item(session_factory) is None  # nothing is shown twice

    # Another reviewer has a queue of their own.
    assert (await next_item(session_factory, reviewer=REVIEWER + 1)).verdict.id == rows[0].id


async def test_labelled_old_and_near_duplicate_items_are_handled(session_factory):
    labelled = await add(session_factory, 1, "애매한 리뷰 하나", 0.50)
    async with session_factory() as session, session.begin():
        await record_feedback(
            session, verdict_id=labelled.id, user_id=7, label=1, num_labels=2, is_admin=False
        )
    old = await add(session_factory, 2, "오래된 리뷰 입니다", 0.51)
    async with session_factory() as session, session.begin():
        row = await session.get(type(old), old.id)
        row.created_at = utcnow() - timedelta(days=30)
    first = await add(session_factory, 3, "이 영화 정말 좋았다 ㅋㅋ", 0.53)
    twin = await add(session_factory, 4, "이 영화 정말 좋았다 ㅋㅋㅋ", 0.54)  # a near-duplicate of `first`
    other = await add(session_factory, 5, "스토리가 신선했어요", 0.60)

    short = await add(session_factory, 6, "ㅋㅋㅋ", 0.50)  # no review: never queued

    # A user's label that waits for a check leads; old verdicts and what is no review are not queued.
    item = await next_item(session_factory)
    assert item.verdict.id == labelled.id and item.disputed and item.remaining == 4
    item = await next_item(session_factory)
    assert item.verdict.id == first.id and not item.disputed and item.remaining == 3
    assert (await next_item(session_factory)).verdict.id == other.id  # the twin waits a turn
    assert (await next_item(session_factory)).verdict.id == twin.id
    assert await next_item(session_factory) is None and short.id


async def test_outcomes_are_recorded_only_for_items_shown_to_that_reviewer(session_factory):
    verdict = await add(session_factory, 1, "애매한 리뷰예요", 0.5)
    async with session_factory() as session, session.begin():
        assert not await record_review_outcome(
            session, reviewer_id=REVIEWER, verdict_id=verdict.id, outcome=ReviewOutcome.SKIPPED
        )
    await next_item(session_factory)
    async with session_factory() as session, session.begin():
        assert await record_review_outcome(
            session, reviewer_id=REVIEWER, verdict_id=verdict.id, outcome=ReviewOutcome.LABELLED
        )
        await record_feedback(
            session,
            verdict_id=verdict.id,
            user_id=REVIEWER,
            label=0,
            num_labels=2,
            is_admin=False,
            trusted=True,
            source=FeedbackSource.REVIEW,
        )
    assert await next_item(session_factory, reviewer=REVIEWER + 1) is None  # labelled now: out of every queue


async def test_unlabelled_items_come_from_the_sampled_tasks_and_disputed_ones_from_every_task(
    session_factory,
):
    """Both tasks retrain, so by default the least certain verdict of either comes next; a caller can narrow the
    unlabelled sample to some tasks, and a verdict a user labelled still comes first, whatever its task."""
    toxicity = {"정상": 0.34, "공격적": 0.33, "혐오": 0.33}  # as uncertain as a verdict can be

    async def toxicity_verdict(message_id, text):
        return await insert_verdict(
            session_factory,
            message_id=message_id,
            text=text,
            label=0,
            label_name="정상",
            confidence=0.34,
            probabilities=toxicity,
            task=Task.TOXICITY,
        )

    sentiment = await add(session_factory, 1, "배우 연기가 좋았다 추천", 0.9)
    uncertain = await toxicity_verdict(1, "배우 연기가 좋았다 추천")
    labelled = await toxicity_verdict(2, "이 감독 진짜 머리가 비었네")
    async with session_factory() as session, session.begin():
        await record_feedback(
            session, verdict_id=labelled.id, user_id=7, label=1, num_labels=3, is_admin=False
        )

    first, *rest = [await next_item(session_factory) for _ in range(3)]
    assert (first.verdict.id, first.disputed) == (labelled.id, True)
    # both tasks are sampled (the 긍정 verdict comes before the 정상 one: it differs from the last class shown)
    assert {(item.verdict.id, item.disputed) for item in rest} == {
        (uncertain.id, False),
        (sentiment.id, False),
    }
    assert await next_item(session_factory) is None

    async def next_sentiment_item():
        async with session_factory() as session, session.begin():
            return await next_review_item(
                session,
                reviewer_id=REVIEWER + 1,
                since=utcnow() - SINCE,
                rule=LabelRule(),
                sampled_tasks=(Task.SENTIMENT,),
            )

    assert (await next_sentiment_item()).verdict.id == labelled.id  # disputed first, for every reviewer
    assert (await next_sentiment_item()).verdict.id == sentiment.id
    assert await next_sentiment_item() is None  # the unlabelled toxicity verdict is not sampled
