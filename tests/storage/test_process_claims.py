"""Rows held by bot processes sharing one database (bot/storage/process_claims.py), on SQLite and PostgreSQL.

On PostgreSQL a process is alive while its advisory lock is held (`ProcessLock`): its updates, messages and
actions are left to it, and taken over, each by exactly one process, the moment its lock goes. On SQLite one
process runs, so whatever another key holds was left by an earlier run and is taken over at once.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.storage import (
    ActionKind,
    ChatMode,
    OutboxMessage,
    add_action,
    adopt_updates,
    claim_action,
    claim_outbox_message,
    due_outbox_messages,
    enqueue_message,
    pending_actions,
    pending_updates,
    record_decision,
    start_updates,
    store_updates,
)
from bot.storage.models import utcnow
from bot.storage.process_claims import ProcessLock

BOT = 999000


def payload(update_id: int) -> dict:
    chat = {"id": 1001, "type": "private"}
    return {
        "update_id": update_id,
        "message": {"message_id": update_id, "date": 1, "chat": chat, "text": "리뷰"},
    }


async def test_a_live_processs_updates_stay_with_it_and_a_gone_ones_go_to_exactly_one_process(
    engine, session_factory
):
    first, second, third = ProcessLock(engine), ProcessLock(engine), ProcessLock(engine)
    for lock in (first, second, third):
        await lock.start()
    postgres = engine.dialect.name == "postgresql"
    try:
        async with session_factory.begin() as session:
            await store_updates(
                session, bot_id=BOT, updates=[payload(i) for i in range(1, 41)], process_key=first.key
            )
        async with session_factory.begin() as session:
            taken_while_alive = await adopt_updates(session, bot_id=BOT, process_key=second.key)
            started_by_another = await start_updates(
                session, bot_id=BOT, update_ids=[1, 2], process_key=second.key if postgres else 1
            )
        if postgres:  # the first process is alive: its updates stay with it
            assert taken_while_alive == [] and started_by_another == {}
            await first.close()  # its session ends: the lock goes with it

            async def adopt(lock: ProcessLock) -> list[int]:
                async with session_factory.begin() as session:
                    return await adopt_updates(session, bot_id=BOT, process_key=lock.key)

            by_second, by_third = await asyncio.gather(adopt(second), adopt(third))
            assert sorted(by_second + by_third) == list(range(1, 41))  # each update to exactly one process
            assert not set(by_second) & set(by_third)
            winner = second if by_second else third
            async with session_factory.begin() as session:
                assert (
                    await adopt_updates(session, bot_id=BOT, process_key=first.key) == []
                )  # held by live ones
                started = await start_updates(session, bot_id=BOT, update_ids=[1], process_key=winner.key)
            assert started == ({1: 1} if 1 in (by_second if winner is second else by_third) else {})
        else:  # one process on SQLite: another key was an earlier run's, taken over at once
            assert taken_while_alive == list(range(1, 41))
        async with session_factory.begin() as session:
            assert len(await pending_updates(session, bot_id=BOT, update_ids=[1, 2, 99])) == 2
    finally:
        for lock in (first, second, third):
            await lock.close()


async def test_a_message_or_action_held_by_a_live_process_is_claimed_by_no_other(engine, session_factory):
    holder, other = ProcessLock(engine), ProcessLock(engine)
    await holder.start()
    await other.start()
    postgres = engine.dialect.name == "postgresql"
    try:
        async with session_factory.begin() as session:
            held = await enqueue_message(session, bot_id=BOT, chat_id=1, text="답장", process_key=holder.key)
            nobodys = await enqueue_message(session, bot_id=BOT, chat_id=1, text="알림")
            decision, _ = await record_decision(
                session,
                chat_id=-100,
                message_id=7,
                user_id=5,
                verdict_id=None,
                mode=ChatMode.ACT,
                toxic_probability=0.9,
                threshold=0.5,
                rule="test",
                strike=False,
                strikes=0,
                warn=False,
            )
            action, _ = await add_action(session, decision=decision, kind=ActionKind.DELETE)
        later = utcnow()
        async with session_factory.begin() as session:
            due = {m.id for m in await due_outbox_messages(session, now=later, process_key=other.key)}
            assert nobodys.id in due and (held.id not in due) == postgres
            assert await claim_outbox_message(session, message_id=nobodys.id, process_key=other.key)
            assert (
                await claim_outbox_message(session, message_id=held.id, process_key=other.key) is not postgres
            )
            assert await claim_action(session, action_id=action.id, process_key=holder.key)
            assert await claim_action(session, action_id=action.id, process_key=other.key) is not postgres
            assert [a.id for a in await pending_actions(session, process_key=other.key)] == (
                [] if postgres else [action.id]
            )
        await holder.close()
        async with session_factory.begin() as session:
            assert await claim_outbox_message(session, message_id=held.id, process_key=other.key)
            assert await claim_action(session, action_id=action.id, process_key=other.key)
            owners = dict((await session.execute(select(OutboxMessage.id, OutboxMessage.claimed_by))).all())
        assert owners == {held.id: other.key, nobodys.id: other.key}
    finally:
        await holder.close()
        await other.close()
