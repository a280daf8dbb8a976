"""RETENTION_DAYS on a schedule: the running bot's scheduler (started by `RetrainingService.start`, as `moderator
run` starts it) purges review texts older than RETENTION_DAYS and keeps every label. A real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from retraining_helpers import LABEL_NAMES, make_settings, wait_for
from sqlalchemy import select, update

from bot.retraining import scheduler
from bot.retraining.service import RetrainingService
from bot.storage import Feedback, add_verdict, record_feedback
from bot.storage.models import Verdict, utcnow

ADMIN = 7


async def labelled_verdict(session_factory, message_id: int, text: str, *, age_days: float) -> int:
    """A verdict `age_days` old, labelled by an admin (a trusted label)."""
    async with session_factory() as session, session.begin():
        verdict = await add_verdict(
            session,
            chat_id=1,
            message_id=message_id,
            user_id=42,
            text=text,
            label=0,
            label_name=LABEL_NAMES[0],
            confidence=0.8,
            probabilities={LABEL_NAMES[0]: 0.8, LABEL_NAMES[1]: 0.2},
            model_version_id=None,
        )
        await record_feedback(
            session, verdict_id=verdict.id, user_id=ADMIN, label=1, num_labels=2, is_admin=True
        )
        await session.execute(
            update(Verdict)
            .where(Verdict.id == verdict.id)
            .values(created_at=utcnow() - timedelta(days=age_days))
        )
        return verdict.id


async def test_the_bot_schedule_purges_old_texts_and_keeps_labels(tmp_path, session_factory, monkeypatch):
    monkeypatch.setattr(scheduler, "FIRST_RETENTION_PURGE_SECONDS", 0.2)
    monkeypatch.setattr(scheduler, "RETENTION_PURGE_SECONDS", 0.5)
    old = await labelled_verdict(session_factory, 1, "오래전에 보낸 리뷰", age_days=31)
    recent = await labelled_verdict(session_factory, 2, "어제 보낸 리뷰", age_days=29)
    service = RetrainingService(
        settings=make_settings(tmp_path, retention_days=30), session_factory=session_factory
    )

    async def texts() -> dict[int, str | None]:
        async with session_factory() as session:
            return dict((await session.execute(select(Verdict.id, Verdict.text))).all())

    def purged(verdict_id: int):
        async def check() -> bool:
            return (await texts())[verdict_id] is None

        return check

    await service.start()
    try:
        assert (await texts())[old] is not None  # nothing before the first tick, shortly after start-up
        await wait_for(purged(old), timeout=30)
        # A text that ages past RETENTION_DAYS while the bot runs goes at a later tick, without a restart.
        async with session_factory() as session, session.begin():
            await session.execute(
                update(Verdict).where(Verdict.id == recent).values(created_at=utcnow() - timedelta(days=31))
            )
        await wait_for(purged(recent), timeout=30)
    finally:
        await service.stop()

    async with session_factory() as session:
        verdicts = {row.id: row for row in (await session.scalars(select(Verdict))).all()}
        feedback = (await session.scalars(select(Feedback))).all()
    assert all(verdict.text is None and verdict.text_purged_at is not None for verdict in verdicts.values())
    assert {verdict.label for verdict in verdicts.values()} == {0}  # the verdicts and their labels stay
    assert sorted((row.verdict_id, row.label) for row in feedback) == [(old, 1), (recent, 1)]


async def test_without_retention_days_nothing_is_purged(tmp_path, session_factory, monkeypatch):
    monkeypatch.setattr(scheduler, "FIRST_RETENTION_PURGE_SECONDS", 0.0)
    old = await labelled_verdict(session_factory, 1, "오래전에 보낸 리뷰", age_days=400)
    service = RetrainingService(settings=make_settings(tmp_path), session_factory=session_factory)
    await service.start()
    try:
        assert service._scheduler.get_job(scheduler.RETENTION_JOB_ID) is None
        await asyncio.sleep(0.5)
    finally:
        await service.stop()
    async with session_factory() as session:
        assert (await session.get(Verdict, old)).text == "오래전에 보낸 리뷰"
