"""Statistics, and retention purging raw text while keeping labels and statistics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from storage_helpers import insert_verdict

from bot.storage import (
    FeedbackSource,
    InvalidDataError,
    get_stats,
    purge_old_texts,
    record_feedback,
    void_feedback_of_user,
)
from bot.storage.models import Verdict, utcnow


async def fill(session_factory) -> list[Verdict]:
    """Four verdicts (three 긍정, one 부정): the first corrected to 부정 by two users; the third confirmed (부정) by
    a user who gets voided; the fourth confirmed in the review queue."""
    verdicts = [
        await insert_verdict(session_factory, message_id=number, label=label, label_name=name)
        for number, (label, name) in enumerate([(1, "긍정"), (1, "긍정"), (0, "부정"), (1, "긍정")])
    ]
    async with session_factory() as session, session.begin():
        for verdict, user_id in [(verdicts[0], 7), (verdicts[0], 8), (verdicts[2], 9)]:
            await record_feedback(
                session, verdict_id=verdict.id, user_id=user_id, label=0, num_labels=2, is_admin=False
            )
        await record_feedback(
            session,
            verdict_id=verdicts[3].id,
            user_id=5,
            label=1,
            num_labels=2,
            is_admin=False,
            trusted=True,
            source=FeedbackSource.REVIEW,
        )
    return verdicts


async def test_stats(session_factory):
    async with session_factory() as session:
        empty = await get_stats(session)
    assert (empty.verdicts, empty.corrections, empty.corrected_share, empty.verdicts_by_label) == (
        0,
        0,
        0.0,
        {},
    )

    await fill(session_factory)
    async with session_factory() as session:
        stats = await get_stats(session)
    assert stats.verdicts == 4
    assert stats.corrections == 2 and stats.corrected_verdicts == 1  # corrections and confirmations apart
    assert stats.confirmations == 2 and stats.review_labels == 1
    assert stats.corrected_share == pytest.approx(0.25)
    assert stats.verdicts_by_label == {"긍정": 3, "부정": 1}

    async with session_factory() as session, session.begin():
        await void_feedback_of_user(session, user_id=9, voided_by=1000)
    async with session_factory() as session:
        stats = await get_stats(session)
    assert (stats.corrections, stats.confirmations, stats.corrected_verdicts) == (2, 1, 1)


async def test_purge_forgets_old_texts_and_keeps_labels_and_statistics(session_factory):
    verdicts = await fill(session_factory)
    now = utcnow()
    old_ids = [verdicts[0].id, verdicts[2].id]
    async with session_factory() as session, session.begin():
        await session.execute(
            update(Verdict).where(Verdict.id.in_(old_ids)).values(created_at=now - timedelta(days=31))
        )
        await session.execute(
            update(Verdict).where(Verdict.id == verdicts[1].id).values(created_at=now - timedelta(days=29))
        )
    async with session_factory() as session:
        stats_before = await get_stats(session)

    async with session_factory() as session, session.begin():
        assert await purge_old_texts(session, older_than_days=30, now=now) == 2
    async with session_factory() as session, session.begin():
        assert await purge_old_texts(session, older_than_days=30, now=now) == 0  # nothing left to purge

    async with session_factory() as session:
        stats_after = await get_stats(session)
        rows = {verdict.id: verdict for verdict in [await session.get(Verdict, v.id) for v in verdicts]}
    assert stats_after == stats_before
    for verdict_id in old_ids:
        assert rows[verdict_id].text is None and rows[verdict_id].text_purged_at == now
        assert rows[verdict_id].text_length > 0 and rows[verdict_id].label_name in ("긍정", "부정")
    assert rows[verdicts[1].id].text == verdicts[1].text and rows[verdicts[1].id].text_purged_at is None
    assert rows[verdicts[3].id].text is not None


@pytest.mark.parametrize("days", [-1, 1.5, None])
async def test_purge_rejects_a_bad_retention(session_factory, days):
    with pytest.raises(InvalidDataError, match="whole number of days"):
        async with session_factory() as session, session.begin():
            await purge_old_texts(session, older_than_days=days)
