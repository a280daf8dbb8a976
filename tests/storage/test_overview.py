"""The web app's overview queries (bot.storage.overview): counts per UTC day, grouped in SQL, on SQLite and
PostgreSQL alike, bounded by their window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import update
from storage_helpers import insert_verdict

from bot import storage
from bot.storage import ActionKind, ActionStatus, ChatMode, FeedbackSource, Task
from bot.storage.models import Feedback, Verdict

DAY1 = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # late in a UTC day: a local-time day would differ
DAY2 = datetime(2026, 12, 1, 0, 15, tzinfo=UTC)
GROUP, OTHER = -1001, -1002


async def set_created(session_factory, model, row_id: int, moment: datetime) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(update(model).where(model.id == row_id).values(created_at=moment))


async def verdict_at(monkeypatch, session_factory, moment: datetime, **fields) -> Verdict:
    """A verdict recorded at `moment` (the clock of `add_verdict`, so that the rollup and the labels' copies of its
    time agree: a verdict is never backdated after the fact)."""
    with monkeypatch.context() as patch:
        patch.setattr("bot.storage.verdicts.utcnow", lambda: moment)
        return await insert_verdict(session_factory, **fields)


async def label(session_factory, verdict_id: int, user_id: int, value: int, **extra) -> int:
    async with session_factory() as session, session.begin():
        row, _ = await storage.record_feedback(
            session,
            verdict_id=verdict_id,
            user_id=user_id,
            label=value,
            num_labels=2,
            is_admin=False,
            **extra,
        )
        return row.id


async def test_verdicts_labels_agreement_and_actions_per_utc_day(session_factory, monkeypatch, record_strike):
    sf = session_factory
    first = await verdict_at(monkeypatch, sf, DAY1, chat_id=GROUP, message_id=1, label=1, label_name="긍정")
    second = await verdict_at(monkeypatch, sf, DAY2, chat_id=GROUP, message_id=2, label=0, label_name="부정")
    third = await verdict_at(monkeypatch, sf, DAY2, chat_id=OTHER, message_id=3, label=1, label_name="긍정")
    await verdict_at(
        monkeypatch, sf, DAY1 - timedelta(days=40), chat_id=GROUP, message_id=4, label=1, label_name="긍정"
    )
    toxic = await insert_verdict(
        sf,
        chat_id=GROUP,
        message_id=5,
        label=1,
        label_name="공격적",
        task=Task.TOXICITY,
        probabilities={"정상": 0.1, "공격적": 0.9},
    )
    since = datetime(2026, 11, 20, tzinfo=UTC)

    async with sf() as session:
        all_chats = await storage.verdicts_per_day(session, task=Task.SENTIMENT, since=since)
        one_chat = await storage.verdicts_per_day(session, task=Task.SENTIMENT, since=since, chat_id=GROUP)
    assert all_chats == {date(2026, 11, 30): {"긍정": 1}, date(2026, 12, 1): {"부정": 1, "긍정": 1}}
    assert one_chat == {date(2026, 11, 30): {"긍정": 1}, date(2026, 12, 1): {"부정": 1}}

    corrected = await label(sf, first.id, 901, 0)  # a correction
    confirmed = await label(sf, second.id, 902, 0)  # a confirmation
    reviewed = await label(sf, third.id, 903, 0, trusted=True, source=FeedbackSource.REVIEW)
    voided = await label(sf, third.id, 904, 1)
    for row_id, moment in ((corrected, DAY1), (confirmed, DAY2), (reviewed, DAY2), (voided, DAY2)):
        await set_created(sf, Feedback, row_id, moment)
    async with sf() as session, session.begin():
        await storage.void_feedback_of_user(session, user_id=904, voided_by=1)
        decision = await record_strike(
            session,
            chat_id=GROUP,
            message_id=5,
            verdict_id=toxic.id,
            actions=[storage.PlannedAction(ActionKind.DELETE)],
        )
        await storage.record_admin_decision(session, decision=decision, answer="right", admin_id=905)
        await storage.record_report(session, chat_id=GROUP, message_id=5, reporter_id=906, hourly_limit=10)
    await label(sf, toxic.id, 905, 1)  # the admin's answer, as the log button records it
    await label(sf, toxic.id, 906, 1)  # the reporter's suggestion
    async with sf() as session:
        labels = await storage.labels_per_day(session, task=Task.SENTIMENT, since=since)
        in_group = await storage.labels_per_day(session, task=Task.SENTIMENT, since=since, chat_id=GROUP)
        toxic_labels = await storage.labels_per_day(
            session, task=Task.TOXICITY, since=datetime.now(UTC) - timedelta(days=1)
        )
        later = await storage.labels_per_day(session, task=Task.SENTIMENT, since=DAY2)
    assert labels[date(2026, 11, 30)].by_kind == {"correction": 1}
    assert labels[date(2026, 11, 30)].agreement == 0.0
    assert labels[date(2026, 12, 1)].by_kind == {"confirmation": 1, "review": 1}  # the voided label is out
    assert (labels[date(2026, 12, 1)].agreed, labels[date(2026, 12, 1)].total) == (1, 2)
    assert set(in_group) == {date(2026, 11, 30), date(2026, 12, 1)} and in_group[date(2026, 12, 1)].total == 1
    ((_, toxic_day),) = toxic_labels.items()
    assert toxic_day.by_kind == {"admin_decision": 1, "report": 1} and toxic_day.agreement == 1.0
    assert set(later) == {date(2026, 12, 1)}  # the window bounds it

    async with sf() as session, session.begin():
        action = decision.actions[0] if decision.actions else None
        assert action is not None
        await storage.finish_action(session, action_id=action.id, status=ActionStatus.DONE)
    async with sf() as session:
        actions = await storage.actions_per_chat(session, since=since)
        none_later = await storage.actions_per_chat(session, since=datetime.now(UTC) + timedelta(days=1))
        groups = await storage.known_group_ids(session)
        log = await storage.chat_decisions(session, chat_id=GROUP)
        assert await storage.is_known_group(session, chat_id=GROUP)
        assert not await storage.is_known_group(session, chat_id=OTHER)
        totals = {t.user_id: t for t in await storage.labeller_totals(session)}
    assert actions == {GROUP: {"delete/done": 1}} and none_later == {}
    assert groups == [GROUP]
    assert [(d.id, v.id) for d, v in log] == [(decision.id, toxic.id)]
    assert (totals[904].labels, totals[904].voided) == (0, 1)
    assert (totals[903].labels, totals[903].trusted) == (1, 1)
    assert totals[901].last_at == DAY1


async def test_known_groups_include_policies_without_decisions(session_factory):
    async with session_factory() as session, session.begin():
        await storage.update_chat_policy(session, chat_id=OTHER, updated_by=1, mode=ChatMode.ACT)
    async with session_factory() as session:
        assert await storage.known_group_ids(session) == [OTHER]
        assert await storage.is_known_group(session, chat_id=OTHER)
