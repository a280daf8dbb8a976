"""The Telegram inbox and outbox tables, on SQLite and PostgreSQL: idempotent storing, attempts and poison
updates, one reply per (update, seq), the sent mark with the verdict's reply id, retention that keeps what a
restart needs, and the deleted-file guard."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from storage_helpers import insert_verdict

from bot.storage import (
    DatabaseFileGuard,
    DatabaseGoneError,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    TelegramUpdate,
    due_outbox_messages,
    enqueue_message,
    fail_poison_updates,
    finish_updates,
    get_verdict,
    mark_outbox_failed_attempt,
    mark_outbox_sent,
    pending_updates,
    purge_inbox,
    purge_outbox,
    start_updates,
    store_updates,
)
from bot.storage.models import utcnow

BOT = 999000
KEY = 4242  # the process key the rows are stored under (bot/storage/process_claims.py)


def update_payload(update_id: int, text: str = "리뷰") -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id * 10,
            "date": 1,
            "chat": {"id": 1001, "type": "private"},
            "text": text,
        },
    }


async def test_updates_are_stored_once_whatever_telegram_delivers_again(session_factory):
    async with session_factory.begin() as session:
        new = await store_updates(
            session, bot_id=BOT, updates=[update_payload(1), update_payload(2, "\x00널")], process_key=KEY
        )
    assert new == [1, 2]
    async with session_factory.begin() as session:  # a re-delivery overlapping the first batch
        new = await store_updates(
            session, bot_id=BOT, updates=[update_payload(2), update_payload(3)], process_key=KEY
        )
        other_bot = await store_updates(session, bot_id=BOT + 1, updates=[update_payload(1)], process_key=KEY)
    assert new == [3] and other_bot == [1]  # update ids count per bot
    async with session_factory.begin() as session:
        rows = await pending_updates(session, bot_id=BOT)
    assert [(r.update_id, r.status, r.attempts) for r in rows] == [
        (i, InboxStatus.PENDING, 0) for i in (1, 2, 3)
    ]
    assert rows[1].payload == update_payload(2, "\x00널")  # the payload exactly as delivered


async def test_attempts_are_counted_and_poison_updates_are_failed(session_factory):
    async with session_factory.begin() as session:
        await store_updates(
            session, bot_id=BOT, updates=[update_payload(i) for i in (1, 2, 3)], process_key=KEY
        )
    for _ in range(3):
        async with session_factory.begin() as session:
            attempts = await start_updates(session, bot_id=BOT, update_ids=[1], process_key=KEY)
    assert attempts == {1: 3}
    async with session_factory.begin() as session:
        assert await start_updates(session, bot_id=BOT, update_ids=[2, 99], process_key=KEY) == {
            2: 1
        }  # 99: unknown
        await finish_updates(session, bot_id=BOT, update_ids=[2])
        assert (
            await start_updates(session, bot_id=BOT, update_ids=[2], process_key=KEY) == {}
        )  # done: not started again
        poisoned = await fail_poison_updates(session, bot_id=BOT, update_ids=[1, 2, 3], max_attempts=3)
    assert poisoned == [1]
    async with session_factory.begin() as session:
        rows = {r.update_id: r for r in (await session.scalars(select(TelegramUpdate))).all()}
    assert rows[1].status == InboxStatus.FAILED and "3 attempts" in rows[1].error
    assert rows[2].status == InboxStatus.DONE and rows[2].processed_at is not None
    assert rows[3].status == InboxStatus.PENDING


async def test_one_reply_per_update_and_seq_and_the_sent_mark_stores_the_verdicts_reply_id(session_factory):
    verdict = await insert_verdict(session_factory)
    async with session_factory.begin() as session:
        first = await enqueue_message(
            session,
            bot_id=BOT,
            update_id=7,
            seq=0,
            chat_id=verdict.chat_id,
            reply_to_message_id=verdict.message_id,
            text="긍정 리뷰 (80.0%)\x00",
            reply_markup={"inline_keyboard": [[{"text": "맞아요", "callback_data": f"ok:{verdict.id}"}]]},
            verdict_id=verdict.id,
        )
    async with session_factory.begin() as session:  # the same update processed again: the same row
        again = await enqueue_message(
            session, bot_id=BOT, update_id=7, seq=0, chat_id=verdict.chat_id, text="다른 글"
        )
        second = await enqueue_message(
            session, bot_id=BOT, update_id=7, seq=1, chat_id=verdict.chat_id, text="두 번째 답장"
        )
        unscoped = [
            await enqueue_message(session, bot_id=BOT, chat_id=verdict.chat_id, text="알림") for _ in range(2)
        ]
    assert again.id == first.id and again.text == "긍정 리뷰 (80.0%)"  # NUL dropped, first text kept
    assert second.id != first.id and unscoped[0].id != unscoped[1].id
    assert first.reply_markup["inline_keyboard"][0][0]["callback_data"] == f"ok:{verdict.id}"

    async with session_factory.begin() as session:
        await mark_outbox_sent(session, message_id=first.id, sent_message_id=555)
    async with session_factory.begin() as session:
        row = await session.get(OutboxMessage, first.id)
        assert (row.status, row.sent_message_id, row.attempts) == (OutboxStatus.SENT, 555, 1)
        assert (await get_verdict(session, verdict_id=verdict.id)).reply_message_id == 555
        again = await enqueue_message(session, bot_id=BOT, update_id=7, seq=0, chat_id=1, text="x")
    assert again.status == OutboxStatus.SENT  # re-processing sees it was sent


async def test_failed_sends_wait_for_their_retry_time_or_are_given_up(session_factory):
    async with session_factory.begin() as session:
        rows = [await enqueue_message(session, bot_id=BOT, chat_id=1, text=f"답장 {i}") for i in range(3)]
    now = utcnow()
    async with session_factory.begin() as session:
        fresh = await due_outbox_messages(session, now=now, created_before=now - timedelta(seconds=5))
        assert fresh == []  # a message just stored belongs to the handler sending it
        await mark_outbox_failed_attempt(
            session, message_id=rows[0].id, error="NetworkError", retry_at=now + timedelta(seconds=30)
        )
        await mark_outbox_failed_attempt(session, message_id=rows[1].id, error="BadRequest", retry_at=None)
    async with session_factory.begin() as session:
        due_now = await due_outbox_messages(session, now=now + timedelta(seconds=10))
        due_later = await due_outbox_messages(session, now=now + timedelta(seconds=31))
        failed = await session.get(OutboxMessage, rows[1].id)
    assert [r.id for r in due_now] == [rows[2].id]
    assert [r.id for r in due_later] == [rows[0].id, rows[2].id]
    assert (failed.status, failed.attempts, failed.last_error) == (OutboxStatus.FAILED, 1, "BadRequest")


async def test_retention_deletes_old_processed_rows_but_keeps_what_a_restart_needs(session_factory):
    async with session_factory.begin() as session:
        await store_updates(
            session, bot_id=BOT, updates=[update_payload(i) for i in (1, 2, 3)], process_key=KEY
        )
        await finish_updates(session, bot_id=BOT, update_ids=[1])  # done
        # update 2 stays pending (a crash), update 3 is done but recent
        sent_for_pending = await enqueue_message(session, bot_id=BOT, update_id=2, chat_id=1, text="a")
        sent_for_done = await enqueue_message(session, bot_id=BOT, update_id=1, chat_id=1, text="b")
        unsent = await enqueue_message(session, bot_id=BOT, update_id=1, seq=1, chat_id=1, text="c")
        for row in (sent_for_pending, sent_for_done):
            await mark_outbox_sent(session, message_id=row.id, sent_message_id=row.id + 100)
    old = utcnow() - timedelta(days=3)
    async with session_factory.begin() as session:
        await session.execute(
            update(TelegramUpdate).where(TelegramUpdate.update_id != 3).values(processed_at=old)
        )
        await session.execute(
            update(TelegramUpdate).where(TelegramUpdate.update_id == 2).values(processed_at=None)
        )
        await session.execute(update(OutboxMessage).values(created_at=old))
        await finish_updates(session, bot_id=BOT, update_ids=[3])
    async with session_factory.begin() as session:
        purged_updates = await purge_inbox(session, older_than=utcnow() - timedelta(days=1))
        purged_messages = await purge_outbox(session, older_than=utcnow() - timedelta(days=1))
    assert (purged_updates, purged_messages) == (1, 1)
    async with session_factory.begin() as session:
        left_updates = sorted((await session.scalars(select(TelegramUpdate.update_id))).all())
        left_messages = sorted((await session.scalars(select(OutboxMessage.id))).all())
    assert left_updates == [2, 3]  # pending stays; recent stays
    assert left_messages == sorted([sent_for_pending.id, unsent.id])  # the pending update's reply; unsent


def test_the_file_guard_notices_a_deleted_or_replaced_sqlite_file(tmp_path):
    path = tmp_path / "moderator.db"
    path.write_bytes(b"")
    guard = DatabaseFileGuard(f"sqlite+aiosqlite:///{path}")
    guard.check()
    os.remove(path)
    with pytest.raises(DatabaseGoneError, match="deleted"):
        guard.check()
    path.write_bytes(b"")  # a new, empty file in its place (what a new SQLite connection creates)
    replaced = tmp_path / "other.db"
    replaced.write_bytes(b"")
    os.replace(replaced, path)
    with pytest.raises(DatabaseGoneError, match="deleted|replaced"):
        guard.check()
    assert not DatabaseFileGuard("postgresql+asyncpg://u@127.0.0.1/db").enabled
    with pytest.raises(DatabaseGoneError, match="does not exist"):
        DatabaseFileGuard(f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}")


async def test_a_secret_text_is_replaced_once_sent_or_given_up_and_kept_while_it_may_be_retried(
    session_factory,
):
    async with session_factory.begin() as session:
        sent, retried, given_up = [
            await enqueue_message(
                session,
                bot_id=BOT,
                chat_id=1,
                text=f"링크 {i}: /login/secret{i}",
                text_after_send="링크를 보냈어요",
            )
            for i in range(3)
        ]
    async with session_factory.begin() as session:
        await mark_outbox_sent(session, message_id=sent.id, sent_message_id=77)
        await mark_outbox_failed_attempt(
            session, message_id=retried.id, error="NetworkError", retry_at=utcnow() + timedelta(seconds=30)
        )
        await mark_outbox_failed_attempt(session, message_id=given_up.id, error="Forbidden", retry_at=None)
    async with session_factory.begin() as session:
        rows = {row.id: row for row in await session.scalars(select(OutboxMessage))}
    assert (rows[sent.id].text, rows[sent.id].text_after_send) == ("링크를 보냈어요", None)
    assert (rows[given_up.id].text, rows[given_up.id].text_after_send) == ("링크를 보냈어요", None)
    assert rows[retried.id].text == "링크 1: /login/secret1"  # still to be sent: the link must stay
