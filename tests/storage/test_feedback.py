"""Human labels (corrections and confirmations): replacement, voiding, trust, rate-limit counts, and the
training-set conflict rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from storage_helpers import count_rows, insert_verdict

from bot.storage import (
    FeedbackSource,
    InvalidDataError,
    RateLimitedError,
    RunStatus,
    RunTrigger,
    count_feedback_by_user_since,
    count_unused_feedback,
    export_human_labels,
    finish_training_run,
    mark_feedback_used,
    purge_old_texts,
    record_feedback,
    start_training_run,
    void_feedback_of_user,
)
from bot.storage.label_trust import LabelRule
from bot.storage.models import Feedback, utcnow

NEGATIVE, POSITIVE = 0, 1
ADMIN = 1000


async def correct(session_factory, verdict, user_id, label, *, is_admin=False, **options):
    async with session_factory() as session, session.begin():
        return await record_feedback(
            session,
            verdict_id=verdict.id,
            user_id=user_id,
            label=label,
            num_labels=2,
            is_admin=is_admin,
            **options,
        )


async def export(session_factory, **rule):
    async with session_factory() as session:
        labels = await export_human_labels(session, rule=LabelRule(**rule))
    return {example.verdict_id: example.label for example in labels}


async def test_a_users_newer_correction_replaces_the_older_one(session_factory):
    verdict = await insert_verdict(session_factory)
    first, first_changed = await correct(session_factory, verdict, 7, NEGATIVE)
    same, same_changed = await correct(session_factory, verdict, 7, NEGATIVE)
    newer, newer_changed = await correct(session_factory, verdict, 7, POSITIVE)

    assert first_changed and not same_changed and newer_changed
    assert first.id == same.id == newer.id
    assert newer.label == POSITIVE and newer.updated_at > first.created_at
    assert await count_rows(session_factory, Feedback) == 1


@pytest.mark.parametrize("label", [2, -1])
async def test_unknown_label_is_rejected_without_rows(session_factory, label):
    verdict = await insert_verdict(session_factory)
    with pytest.raises(InvalidDataError, match=f"Unknown label {label}"):
        await correct(session_factory, verdict, 7, label)
    assert await count_rows(session_factory, Feedback) == 0


async def test_feedback_on_a_missing_verdict_is_rejected_without_rows(session_factory):
    async with session_factory() as session:
        with pytest.raises(InvalidDataError, match="Verdict 4242 does not exist"):
            async with session.begin():
                await record_feedback(
                    session, verdict_id=4242, user_id=7, label=0, num_labels=2, is_admin=False
                )
    assert await count_rows(session_factory, Feedback) == 0


async def test_count_feedback_by_user_since(session_factory):
    before = utcnow()
    for message_id in (1, 2, 3):
        verdict = await insert_verdict(session_factory, message_id=message_id)
        await correct(session_factory, verdict, 7, NEGATIVE)
    await correct(session_factory, verdict, 8, NEGATIVE)

    async with session_factory() as session:
        assert await count_feedback_by_user_since(session, user_id=7, since=before) == 3
        assert await count_feedback_by_user_since(session, user_id=8, since=before) == 1
        assert (
            await count_feedback_by_user_since(session, user_id=7, since=utcnow() + timedelta(seconds=1)) == 0
        )


async def test_voiding_removes_a_users_corrections_from_training(session_factory):
    verdict = await insert_verdict(session_factory)
    await correct(session_factory, verdict, 7, NEGATIVE)
    await correct(session_factory, verdict, 8, NEGATIVE)
    await correct(session_factory, verdict, 9, POSITIVE)
    assert await export(session_factory, trust_everyone=True) == {verdict.id: NEGATIVE}

    async with session_factory() as session, session.begin():
        assert await void_feedback_of_user(session, user_id=7, voided_by=ADMIN) == 1
    async with session_factory() as session, session.begin():
        assert await void_feedback_of_user(session, user_id=7, voided_by=ADMIN) == 0  # already voided

    # 8 (negative) and 9 (positive) tie; the most recent (9) wins.
    assert await export(session_factory, trust_everyone=True) == {verdict.id: POSITIVE}
    assert await export(session_factory) == {}  # nobody's record is checked yet: nothing counts
    async with session_factory() as session:
        voided = await session.get(Feedback, (await correct(session_factory, verdict, 7, NEGATIVE))[0].id)
        assert voided.voided_by == ADMIN and voided.voided_at is not None  # re-sending does not undo a void
        assert await count_unused_feedback(session) == 2


async def test_an_admin_correction_wins_and_the_latest_admin_wins(session_factory):
    verdict = await insert_verdict(session_factory)
    for user_id in (7, 8, 9):
        await correct(session_factory, verdict, user_id, POSITIVE)
    await correct(session_factory, verdict, ADMIN, NEGATIVE, is_admin=True)
    assert await export(session_factory) == {verdict.id: NEGATIVE}
    assert await export(session_factory, trust_everyone=True) == {verdict.id: NEGATIVE}

    await correct(session_factory, verdict, ADMIN + 1, POSITIVE, is_admin=True)
    assert await export(session_factory) == {verdict.id: POSITIVE}


async def test_a_lone_admin_correction_counts_alone(session_factory):
    verdict = await insert_verdict(session_factory)
    await correct(session_factory, verdict, ADMIN, NEGATIVE, is_admin=True)
    assert await export(session_factory) == {verdict.id: NEGATIVE}


async def test_trusting_everyone_majority_wins_and_a_tie_goes_to_the_latest_label(session_factory):
    majority = await insert_verdict(session_factory, message_id=1)
    await correct(session_factory, majority, 7, NEGATIVE)
    await correct(session_factory, majority, 8, NEGATIVE)
    await correct(session_factory, majority, 9, POSITIVE)  # latest, but outvoted

    tie = await insert_verdict(session_factory, message_id=2)
    await correct(session_factory, tie, 7, POSITIVE)
    await correct(session_factory, tie, 8, POSITIVE)
    await correct(session_factory, tie, 9, NEGATIVE)
    await correct(session_factory, tie, 10, NEGATIVE)  # the latest of a 2-2 tie

    assert await export(session_factory, trust_everyone=True) == {majority.id: NEGATIVE, tie.id: NEGATIVE}
    # Users 9 and 10 change their minds: 7, 8, 9, 10 = positive.
    await correct(session_factory, tie, 9, POSITIVE)
    await correct(session_factory, tie, 10, POSITIVE)
    assert (await export(session_factory, trust_everyone=True))[tie.id] == POSITIVE
    lone = await insert_verdict(session_factory, message_id=3)
    await correct(session_factory, lone, 7, NEGATIVE)
    assert (await export(session_factory, trust_everyone=True))[lone.id] == NEGATIVE


async def test_export_carries_text_and_feedback_ids_and_skips_purged_texts(session_factory):
    kept = await insert_verdict(session_factory, message_id=1, text="최악의 영화")
    old = await insert_verdict(session_factory, message_id=2, text="오래된 리뷰")
    first, _ = await correct(session_factory, kept, 7, NEGATIVE)
    second, _ = await correct(session_factory, kept, 8, NEGATIVE)
    await correct(session_factory, old, 7, NEGATIVE)
    await correct(session_factory, old, 8, NEGATIVE)
    async with session_factory() as session, session.begin():
        old_row = await session.get(type(old), old.id)
        old_row.created_at = utcnow() - timedelta(days=40)
    async with session_factory() as session, session.begin():
        assert await purge_old_texts(session, older_than_days=30) == 1

    short = await insert_verdict(
        session_factory, message_id=3, text="ㅋㅋ 👍"
    )  # stored before the review rule
    await correct(session_factory, short, 7, NEGATIVE)

    async with session_factory() as session:
        labels = await export_human_labels(session, rule=LabelRule(trust_everyone=True))
    assert [(c.verdict_id, c.text, c.label) for c in labels] == [(kept.id, "최악의 영화", NEGATIVE)]
    assert sorted(labels[0].feedback_ids) == sorted([first.id, second.id])


async def test_used_feedback_is_counted_once_and_keeps_its_first_run(session_factory):
    verdict = await insert_verdict(session_factory)
    first, _ = await correct(session_factory, verdict, 7, NEGATIVE)
    second, _ = await correct(session_factory, verdict, 8, NEGATIVE)
    async with session_factory() as session:
        assert await count_unused_feedback(session) == 2

    async with session_factory() as session, session.begin():
        run, _ = await start_training_run(session, trigger=RunTrigger.CLI, requested_by=None)
        await mark_feedback_used(session, feedback_ids=[first.id], run_id=run.id)
        await mark_feedback_used(session, feedback_ids=[first.id, second.id], run_id=run.id)
    async with session_factory() as session:
        assert await count_unused_feedback(session) == 0
        assert (await session.get(Feedback, first.id)).used_by_run_id == run.id

    # Changing one's mind is new information: the next retraining should see it.
    await correct(session_factory, verdict, 8, POSITIVE)
    async with session_factory() as session:
        assert await count_unused_feedback(session) == 1


async def test_mark_feedback_used_keeps_the_first_run(session_factory):
    verdict = await insert_verdict(session_factory)
    feedback, _ = await correct(session_factory, verdict, 7, NEGATIVE)
    async with session_factory() as session, session.begin():
        first_run, _ = await start_training_run(session, trigger=RunTrigger.CLI, requested_by=None)
        await mark_feedback_used(session, feedback_ids=[feedback.id], run_id=first_run.id)
        await finish_training_run(session, run_id=first_run.id, status=RunStatus.SUCCEEDED)
        second_run, created = await start_training_run(session, trigger=RunTrigger.CLI, requested_by=None)
        assert created
        await mark_feedback_used(session, feedback_ids=[feedback.id], run_id=second_run.id)
    async with session_factory() as session:
        assert (await session.get(Feedback, feedback.id)).used_by_run_id == first_run.id


async def test_deleting_a_verdict_cascades_to_its_feedback(session_factory):
    verdict = await insert_verdict(session_factory)
    await correct(session_factory, verdict, 7, NEGATIVE)
    async with session_factory() as session, session.begin():
        await session.delete(await session.get(type(verdict), verdict.id))
    assert await count_rows(session_factory, Feedback) == 0


async def test_labels_that_wait_for_a_reviewer_do_not_count_towards_retraining(session_factory):
    waiting = await insert_verdict(session_factory, message_id=1)
    settled = await insert_verdict(session_factory, message_id=2)
    await correct(session_factory, waiting, 7, NEGATIVE)
    await correct(session_factory, settled, 7, NEGATIVE)
    await correct(session_factory, settled, ADMIN, NEGATIVE, is_admin=True)
    async with session_factory() as session:
        assert await count_unused_feedback(session) == 3
        assert await count_unused_feedback(session, rule=LabelRule(trust_everyone=True)) == 3
        assert await count_unused_feedback(session, rule=LabelRule()) == 2  # the lone unchecked one waits


async def test_a_confirmation_is_stored_and_exported_like_a_correction(session_factory):
    verdict = await insert_verdict(session_factory)  # the bot said 긍정 (1)
    for user_id in (7, 8):
        await correct(session_factory, verdict, user_id, POSITIVE)  # 맞아요: the same label as the verdict
    async with session_factory() as session:
        (example,) = await export_human_labels(session, rule=LabelRule(trust_everyone=True))
        rows = (await session.scalars(select(Feedback))).all()
    assert (example.label, example.predicted, example.is_confirmation) == (POSITIVE, POSITIVE, True)
    assert all(row.label == POSITIVE and not row.trusted for row in rows)


async def test_a_review_queue_label_is_trusted_and_wins_without_a_second_opinion(session_factory):
    verdict = await insert_verdict(session_factory)
    await correct(session_factory, verdict, 7, NEGATIVE)
    await correct(session_factory, verdict, 8, NEGATIVE)
    await correct(session_factory, verdict, 99, POSITIVE, trusted=True, source=FeedbackSource.REVIEW)
    async with session_factory() as session:
        (example,) = await export_human_labels(session, rule=LabelRule())
        reviewer_row = await session.scalar(select(Feedback).where(Feedback.user_id == 99))
    assert example.label == POSITIVE and example.trusted
    assert reviewer_row.source == FeedbackSource.REVIEW and reviewer_row.trusted and not reviewer_row.is_admin

    lone = await insert_verdict(session_factory, message_id=2)
    await correct(session_factory, lone, 99, NEGATIVE, trusted=True, source=FeedbackSource.REVIEW)
    assert (await export(session_factory))[lone.id] == NEGATIVE


async def test_the_hourly_limit_refuses_an_untrusted_user_without_writing(session_factory):
    verdicts = [await insert_verdict(session_factory, message_id=index) for index in range(3)]
    await correct(session_factory, verdicts[0], 7, NEGATIVE, hourly_limit=2)
    await correct(session_factory, verdicts[1], 7, NEGATIVE, hourly_limit=2)
    with pytest.raises(RateLimitedError):
        await correct(session_factory, verdicts[2], 7, NEGATIVE, hourly_limit=2)
    assert await count_rows(session_factory, Feedback) == 2
