"""Whose labels count: records from reviewers' blind spot checks, earned trust, disputed verdicts first in the
review queue (bot.storage.label_trust), on a real SQLite file and PostgreSQL server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from storage_helpers import insert_verdict

from bot.storage import (
    FeedbackSource,
    LabellerRecord,
    LabelRule,
    Standing,
    count_unused_feedback,
    export_human_labels,
    label_backlog,
    labeller_records,
    labeller_standing,
    next_review_item,
    record_feedback,
)
from bot.storage.label_trust import spot_check_draw
from bot.storage.models import Feedback, utcnow

NEGATIVE, POSITIVE = 0, 1
REVIEWER = 500
RULE = LabelRule()  # the defaults: 3 checks, accuracy 0.8, 10% sampled afterwards


async def label(session_factory, verdict, user_id, value, *, trusted=False):
    async with session_factory() as session, session.begin():
        await record_feedback(
            session,
            verdict_id=verdict.id,
            user_id=user_id,
            label=value,
            num_labels=2,
            is_admin=False,
            trusted=trusted,
            source=FeedbackSource.REVIEW if trusted else FeedbackSource.BUTTON,
        )


async def review(session_factory, verdict, value, *, reviewer=REVIEWER):
    await label(session_factory, verdict, reviewer, value, trusted=True)


async def verdicts(session_factory, count, *, first=1):
    return [
        await insert_verdict(
            session_factory, message_id=first + index, text=f"리뷰 번호 {first + index}번 입니다"
        )
        for index in range(count)
    ]


async def exported(session_factory, rule=RULE):
    async with session_factory() as session:
        return {
            example.verdict_id: example.label for example in await export_human_labels(session, rule=rule)
        }


async def standing(session_factory, user_id, rule=RULE):
    async with session_factory() as session:
        return await labeller_standing(session, user_id=user_id, rule=rule)


async def next_item(session_factory, *, reviewer=REVIEWER, rule=RULE):
    async with session_factory() as session, session.begin():
        return await next_review_item(
            session, reviewer_id=reviewer, since=utcnow() - timedelta(days=14), rule=rule
        )


@pytest.mark.parametrize(
    ("checks", "agreed", "expected"),
    [
        (0, 0, Standing.UNPROVEN),
        (2, 2, Standing.UNPROVEN),  # too few checks, however good
        (3, 3, Standing.EARNED),  # (3 + 1) / (3 + 2) = 0.8
        (3, 2, Standing.FAILING),  # 0.6
        (9, 8, Standing.EARNED),  # 0.818
        (10, 8, Standing.FAILING),  # 0.75
    ],
)
def test_a_record_earns_trust_by_its_posterior_accuracy(checks, agreed, expected):
    assert LabellerRecord(7, checks, agreed).standing(RULE) is expected


async def test_an_honest_fixed_pair_counts_once_a_reviewer_checked_a_few_of_their_labels(session_factory):
    """The same two members correct every mistake together: agreement alone never made them colluders."""
    rows = await verdicts(session_factory, 12)
    for verdict in rows:
        for user in (71, 72):
            await label(session_factory, verdict, user, NEGATIVE)
    assert await exported(session_factory) == {}
    assert await standing(session_factory, 71) is Standing.UNPROVEN
    async with session_factory() as session:
        assert (await label_backlog(session, rule=RULE)).waiting == 24
        assert await count_unused_feedback(session, rule=RULE) == 0

    for verdict in rows[:3]:  # the reviewer agrees, blind, three times
        await review(session_factory, verdict, NEGATIVE)
    assert await standing(session_factory, 71) is Standing.EARNED
    assert await standing(session_factory, 72) is Standing.EARNED
    assert await exported(session_factory) == {verdict.id: NEGATIVE for verdict in rows}
    async with session_factory() as session:
        assert (await label_backlog(session, rule=RULE)).waiting == 0
        assert await count_unused_feedback(session, rule=RULE) == 27  # 24 users' labels + 3 reviewer's


async def test_colluders_who_flip_right_verdicts_fail_their_checks_and_never_count(session_factory):
    rows = await verdicts(session_factory, 10)  # the bot said 긍정, and rightly
    for verdict in rows:
        for colluder in (61, 62):
            await label(session_factory, verdict, colluder, NEGATIVE)
    for verdict in rows[:3]:
        await review(session_factory, verdict, POSITIVE)
    assert await standing(session_factory, 61) is Standing.FAILING
    # Only what the reviewer settled counts, with the reviewer's label.
    assert await exported(session_factory) == {verdict.id: POSITIVE for verdict in rows[:3]}
    async with session_factory() as session:
        backlog = await label_backlog(session, rule=RULE)
    assert (backlog.waiting, backlog.not_counting) == (0, 14)


async def test_an_earned_record_falls_when_later_checks_disagree(session_factory):
    rows = await verdicts(session_factory, 10)
    for verdict in rows:
        await label(session_factory, verdict, 81, NEGATIVE)
    for verdict in rows[:3]:
        await review(session_factory, verdict, NEGATIVE)
    assert len(await exported(session_factory)) == 10
    for verdict in rows[3:5]:  # a sleeper: two flips caught
        await review(session_factory, verdict, POSITIVE)
    assert await standing(session_factory, 81) is Standing.FAILING  # (3 + 1) / (5 + 2) = 0.57
    assert await exported(session_factory) == {
        **{verdict.id: NEGATIVE for verdict in rows[:3]},
        **{verdict.id: POSITIVE for verdict in rows[3:5]},
    }


async def test_earned_labellers_who_disagree_are_weighed_by_their_accuracy(session_factory):
    checked = await verdicts(session_factory, 10)
    for index, verdict in enumerate(checked):
        await label(session_factory, verdict, 91, POSITIVE)  # 10 of 10 checks agree
        if index < 9:
            await label(session_factory, verdict, 92, POSITIVE if index < 8 else NEGATIVE)  # 8 of 9
        await review(session_factory, verdict, POSITIVE)
    (disputed,) = await verdicts(session_factory, 1, first=100)
    await label(session_factory, disputed, 92, NEGATIVE)
    await label(session_factory, disputed, 91, POSITIVE)
    async with session_factory() as session:
        records = await labeller_records(session)
    assert (records[91].checks, records[91].agreed, records[92].checks, records[92].agreed) == (10, 10, 9, 8)
    assert records[91].standing(RULE) is records[92].standing(RULE) is Standing.EARNED
    assert (await exported(session_factory))[disputed.id] == POSITIVE  # 11/12 outweighs 9/11

    await label(session_factory, disputed, 93, NEGATIVE)  # an unproven user adds nothing yet
    assert (await exported(session_factory))[disputed.id] == POSITIVE


async def test_disputed_verdicts_lead_the_queue_fewest_checks_first_never_the_reviewers_own(session_factory):
    unlabelled = await insert_verdict(
        session_factory, message_id=900, text="아무도 라벨을 안 단 리뷰", confidence=0.5
    )
    seasoned, newcomer, own = await verdicts(session_factory, 3)
    checked = await verdicts(session_factory, 2, first=10)
    for verdict in checked:  # user 21 has two checks already
        await label(session_factory, verdict, 21, NEGATIVE)
        await review(session_factory, verdict, NEGATIVE, reviewer=REVIEWER + 1)
    await label(session_factory, seasoned, 21, NEGATIVE)
    await label(session_factory, newcomer, 22, NEGATIVE)  # no checks yet: first
    await label(session_factory, own, REVIEWER, NEGATIVE)  # the reviewer's own button label

    shown = []
    while (item := await next_item(session_factory)) is not None:
        shown.append((item.verdict.id, item.disputed))
    assert shown == [(newcomer.id, True), (seasoned.id, True), (unlabelled.id, False)]


@pytest.mark.parametrize(("rate", "queued"), [(0.0, 0), (1.0, 5)])
async def test_a_sample_of_trusted_labellers_labels_keeps_being_checked(session_factory, rate, queued):
    rule = LabelRule(spot_check_rate=rate)
    rows = await verdicts(session_factory, 8)
    for verdict in rows:
        await label(session_factory, verdict, 31, POSITIVE)
    for verdict in rows[:3]:
        await review(session_factory, verdict, POSITIVE, reviewer=REVIEWER + 1)
    assert await standing(session_factory, 31, rule) is Standing.EARNED
    shown = []
    while (item := await next_item(session_factory, rule=rule)) is not None:
        shown.append(item.verdict.id)
    assert len(shown) == queued and set(shown) <= {verdict.id for verdict in rows[3:]}
    assert len(await exported(session_factory, rule)) == 8  # sampled labels still count meanwhile


async def test_an_unproven_users_labels_are_checked_in_an_order_they_cannot_predict(session_factory):
    """Oldest first would let an attacker label old verdicts honestly and flip new ones unchecked."""
    rows = await verdicts(session_factory, 20)
    feedback_ids = {}
    for verdict in rows:
        await label(session_factory, verdict, 41, NEGATIVE)
        async with session_factory() as session:
            feedback_ids[verdict.id] = await session.scalar(
                select(Feedback.id).where(Feedback.verdict_id == verdict.id, Feedback.user_id == 41)
            )
    shown = []
    while (item := await next_item(session_factory)) is not None:
        shown.append(item.verdict.id)
    assert shown == sorted(feedback_ids, key=lambda verdict_id: spot_check_draw(feedback_ids[verdict_id]))
    assert shown != sorted(shown)  # not by age


async def test_the_queue_filtered_by_chat_shows_and_counts_only_that_chats_disputed_and_unlabelled_items(
    session_factory,
):
    here, there = -1001, -1002
    disputed_here = await insert_verdict(
        session_factory, chat_id=here, message_id=1, text="여기 리뷰 하나입니다"
    )
    disputed_there = await insert_verdict(
        session_factory, chat_id=there, message_id=1, text="저기 리뷰 하나예요"
    )
    plain_here = await insert_verdict(session_factory, chat_id=here, message_id=2, text="여기 리뷰 둘입니다")
    await insert_verdict(session_factory, chat_id=there, message_id=2, text="저기 리뷰 둘이에요")
    await label(session_factory, disputed_here, 71, NEGATIVE)  # unproven labellers: both wait for a check
    await label(session_factory, disputed_there, 72, NEGATIVE)

    async def next_in(chat_id):
        async with session_factory() as session, session.begin():
            return await next_review_item(
                session, reviewer_id=REVIEWER, since=utcnow() - timedelta(days=14), rule=RULE, chat_id=chat_id
            )

    first = await next_in(here)
    assert (first.verdict.id, first.disputed, first.remaining) == (disputed_here.id, True, 2)
    second = await next_in(here)
    assert (second.verdict.id, second.disputed, second.remaining) == (plain_here.id, False, 1)
    assert await next_in(here) is None
    elsewhere = await next_in(there)
    assert (elsewhere.verdict.id, elsewhere.disputed, elsewhere.remaining) == (disputed_there.id, True, 2)
