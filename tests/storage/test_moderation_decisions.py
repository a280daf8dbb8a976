"""Group moderation's storage, on SQLite and PostgreSQL: each group's policy (validated), one decision per
message with its actions, strikes counted per mode and window, each action kind once per decision, and
members' reports (once each, rate-limited)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.storage import (
    ActionKind,
    ActionStatus,
    ChatMode,
    InvalidDataError,
    ModerationDecision,
    PlannedAction,
    RateLimitedError,
    ToxicAction,
    add_action,
    count_strikes,
    finish_action,
    get_chat_policy,
    pending_actions,
    record_decision,
    record_report,
    update_chat_policy,
)
from bot.storage.models import utcnow

CHAT = -1001234567890


def decision_fields(message_id: int, **overrides):
    values = {
        "chat_id": CHAT,
        "message_id": message_id,
        "user_id": 7,
        "verdict_id": None,
        "mode": ChatMode.ACT,
        "toxic_probability": 0.95,
        "threshold": 0.9,
        "rule": "test",
        "strike": True,
        "strikes": 1,
        "warn": False,
        "actions": (PlannedAction(ActionKind.DELETE),),
    }
    values.update(overrides)
    return values


async def test_a_policy_starts_at_watch_and_only_valid_changes_are_stored(session_factory):
    async with session_factory() as session, session.begin():
        default = await get_chat_policy(session, chat_id=CHAT)
        assert (
            default.mode is ChatMode.WATCH
            and default.toxicity_threshold == 0.9
            and default.log_chat_id is None
        )
        await update_chat_policy(
            session, chat_id=CHAT, updated_by=1, mode="act", action="warn", log_chat_id=-5
        )
    for bad in (
        {"toxicity_threshold": 0.3},
        {"mute_minutes": 0},
        {"ban_after_strikes": -1},
        {"colour": "red"},
    ):
        with pytest.raises(InvalidDataError):
            async with session_factory() as session, session.begin():
                await update_chat_policy(session, chat_id=CHAT, updated_by=1, **bad)
    async with session_factory() as session:
        policy = await get_chat_policy(session, chat_id=CHAT)
    assert (policy.mode, policy.action, policy.log_chat_id, policy.updated_by) == (
        ChatMode.ACT,
        ToxicAction.WARN,
        -5,
        1,
    )
    assert policy.toxicity_threshold == 0.9 and policy.mute_minutes == 60


async def test_a_message_gets_one_decision_and_its_actions_once(session_factory):
    async with session_factory() as session, session.begin():
        first, created = await record_decision(session, **decision_fields(100))
        again, created_again = await record_decision(
            session, **decision_fields(100, actions=(PlannedAction(ActionKind.BAN),))
        )
    assert created and not created_again and again.id == first.id
    async with session_factory() as session, session.begin():
        pending = await pending_actions(session)
        assert [(a.kind, a.message_id) for a in pending] == [(ActionKind.DELETE, 100)]
        decision = await session.get(ModerationDecision, first.id)
        ban, made = await add_action(session, decision=decision, kind=ActionKind.BAN)
        ban_again, made_again = await add_action(session, decision=decision, kind=ActionKind.BAN)
        assert made and not made_again and ban_again.id == ban.id
        await finish_action(session, action_id=pending[0].id, status=ActionStatus.DONE)
    async with session_factory() as session:
        assert [a.kind for a in await pending_actions(session)] == [ActionKind.BAN]


async def test_strikes_count_per_mode_within_the_window(session_factory):
    async with session_factory() as session, session.begin():
        await record_decision(session, **decision_fields(1))
        await record_decision(session, **decision_fields(2))
        await record_decision(session, **decision_fields(3, mode=ChatMode.WATCH))
        await record_decision(session, **decision_fields(4, strike=False))  # undone by an admin
        await record_decision(session, **decision_fields(5, user_id=8))
        old, _ = await record_decision(session, **decision_fields(6))
        await session.execute(
            update(ModerationDecision)
            .where(ModerationDecision.id == old.id)
            .values(decided_at=utcnow() - timedelta(hours=30))
        )
    since = utcnow() - timedelta(hours=24)
    async with session_factory() as session:
        assert await count_strikes(session, chat_id=CHAT, user_id=7, since=since, mode=ChatMode.ACT) == 2
        assert await count_strikes(session, chat_id=CHAT, user_id=7, since=since, mode=ChatMode.WATCH) == 1
        assert await count_strikes(session, chat_id=CHAT, user_id=8, since=since, mode=ChatMode.ACT) == 1


async def test_a_member_reports_a_message_once_and_at_most_the_hourly_limit(session_factory):
    async with session_factory() as session, session.begin():
        assert await record_report(session, chat_id=CHAT, message_id=1, reporter_id=7, hourly_limit=2) == (
            1,
            True,
        )
        assert await record_report(session, chat_id=CHAT, message_id=1, reporter_id=7, hourly_limit=2) == (
            1,
            False,
        )
        assert await record_report(session, chat_id=CHAT, message_id=1, reporter_id=8, hourly_limit=2) == (
            2,
            True,
        )
        assert await record_report(session, chat_id=CHAT, message_id=2, reporter_id=7, hourly_limit=2) == (
            1,
            True,
        )
    with pytest.raises(RateLimitedError):
        async with session_factory() as session, session.begin():
            await record_report(session, chat_id=CHAT, message_id=3, reporter_id=7, hourly_limit=2)
