"""The runner, in process, through the real python-telegram-bot stack against the Bot API stand-in: updates
are stored before they are confirmed, a restart finishes what a crash left without a second reply, a
graceful stop is bounded, getUpdates trouble is one warning line, a refused token stops the runner, the
webhook answers 200 only once an update is stored, and a deleted database file stops the bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from bot_identity import TOKEN
from bot_records import VERDICT_RE, stored_reply_id, verdict_for
from fake_telegram import BOT_USER, Fault
from sqlalchemy import select, text, update

from bot import storage
from bot.storage import InboxStatus, OutboxMessage, OutboxStatus, TelegramUpdate, Verdict

BOT_ID = BOT_USER["id"]


def sqlite_path(database_url: str) -> Path:
    return Path(database_url.split(":///", 1)[1])


async def inbox_rows(bot) -> dict[int, TelegramUpdate]:
    async with bot.session() as session:
        return {row.update_id: row for row in (await session.scalars(select(TelegramUpdate))).all()}


async def outbox_rows(bot) -> list[OutboxMessage]:
    async with bot.session() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def wait_for_done(bot, count: int, timeout: float = 10.0) -> None:
    """Done marks are committed in groups, just after the replies: wait for `count` of them."""
    deadline = time.monotonic() + timeout
    while sum(r.status == InboxStatus.DONE for r in (await inbox_rows(bot)).values()) < count:
        assert time.monotonic() < deadline, "updates not marked done in time"
        await asyncio.sleep(0.05)


def a_message(message_id: int, text: str, *, chat_id: int = 1001) -> dict:
    return {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": "u"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "u"},
        "text": text,
    }


async def test_every_update_is_stored_before_telegram_is_told_it_arrived(start_bot, database_url):
    bot = await start_bot()
    database = sqlite_path(database_url)
    checked: list[tuple[int, bool]] = []

    def stored_already(update_id: int) -> bool:  # another reader of the file sees committed rows only
        with contextlib.closing(sqlite3.connect(database)) as connection:
            row = connection.execute("SELECT 1 FROM telegram_updates WHERE update_id = ?", (update_id,))
            return row.fetchone() is not None

    bot.api.on_confirm = lambda update_id: checked.append((update_id, stored_already(update_id)))
    messages = [bot.api.push_message(f"리뷰 {i}번 정말 재밌어요", chat_id=3000 + i) for i in range(30)]
    for message in messages:
        await bot.api.wait_for_reply(message)
    await bot.api.wait_until(lambda: len(checked) >= 30)

    assert [stored for _, stored in checked] == [True] * len(checked)
    await wait_for_done(bot, 30)
    rows = await inbox_rows(bot)
    for message in messages:
        row = rows[bot.api.update_of_message[(message["chat"]["id"], message["message_id"])]]
        assert row.payload["message"]["text"] == message["text"]
        assert (row.status, row.attempts) == (InboxStatus.DONE, 1)
    assert all(r.status == OutboxStatus.SENT for r in await outbox_rows(bot))


async def test_a_restart_finishes_what_a_crash_left_and_sends_no_reply_twice(start_bot, caplog, database_url):
    bot = await start_bot()
    answered = bot.api.push_message("첫 번째 리뷰 정말 좋았어요")
    first_reply = await bot.api.wait_for_reply(answered)
    answered_update = bot.api.update_of_message[(answered["chat"]["id"], answered["message_id"])]
    journaled = bot.api.push_message("두 번째 리뷰 별로였어요", chat_id=1002, user_id=1002)
    journaled_reply = await bot.api.wait_for_reply(journaled)
    journaled_update = bot.api.update_of_message[(1002, journaled["message_id"])]
    await stored_reply_id(bot, journaled)
    await bot.runner.stop()

    # What a killed process leaves behind, at six moments:
    cut_send = a_message(9_000_001, "보내다가 끊긴 답장의 리뷰")
    never_started = a_message(9_000_002, "시작도 못 한 리뷰 입니다")
    poison = a_message(9_000_003, "매번 프로세스를 죽이는 리뷰")
    suspect = a_message(9_000_004, "두 번 끊겼던 리뷰 입니다")
    async with bot.session() as session:
        # (0) Telegram accepted the reply, the journal has it, the commit marking it sent never happened
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.update_id == journaled_update))
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(status=OutboxStatus.PENDING, sent_message_id=None, sent_at=None)
        )
        await session.execute(
            update(Verdict).where(Verdict.id == row.verdict_id).values(reply_message_id=None)
        )
        await session.execute(
            update(TelegramUpdate)
            .where(TelegramUpdate.update_id == journaled_update)
            .values(status=InboxStatus.PENDING, processed_at=None)
        )
        # (1) the reply was sent, the update not yet marked done
        await session.execute(
            update(TelegramUpdate)
            .where(TelegramUpdate.update_id == answered_update)
            .values(status=InboxStatus.PENDING, processed_at=None)
        )
        await storage.store_updates(
            session,
            bot_id=BOT_ID,
            updates=[
                {"update_id": 90_001, "message": cut_send},
                {"update_id": 90_002, "message": never_started},
                {"update_id": 90_003, "message": poison},
                {"update_id": 90_004, "message": suspect},
            ],
            process_key=1,  # the previous process's key
        )
        # (2) processing started, the reply stored, its send cut off
        await session.execute(
            update(TelegramUpdate).where(TelegramUpdate.update_id == 90_001).values(attempts=1)
        )
        await storage.enqueue_message(
            session,
            bot_id=BOT_ID,
            update_id=90_001,
            seq=0,
            chat_id=1001,
            reply_to_message_id=cut_send["message_id"],
            text="이전 프로세스가 만든 답장",
        )
        # (3) stored, never started; (4) started three times, the process died each time; (5) twice
        await session.execute(
            update(TelegramUpdate).where(TelegramUpdate.update_id == 90_003).values(attempts=3)
        )
        await session.execute(
            update(TelegramUpdate).where(TelegramUpdate.update_id == 90_004).values(attempts=2)
        )
    journal = Path(f"{sqlite_path(database_url)}-sent.journal")
    await asyncio.to_thread(journal.write_text, f"{row.id} {journaled_reply['message_id']}\n")

    bot = await start_bot()
    cut_reply = await bot.api.wait_for_reply(cut_send)
    fresh_reply = await bot.api.wait_for_reply(never_started)
    await bot.api.wait_for_reply(suspect)
    await bot.api.wait_for_reply(bot.api.push_message("그 다음 리뷰"))

    assert bot.api.replies_to(answered) == [first_reply]  # not sent again
    assert [r["text"] for r in bot.api.replies_to(cut_send)] == ["이전 프로세스가 만든 답장"]
    assert cut_reply["reply_to_message"]["message_id"] == cut_send["message_id"]
    assert VERDICT_RE.match(fresh_reply["text"]) and len(bot.api.replies_to(never_started)) == 1
    assert bot.api.replies_to(poison) == []
    assert bot.api.replies_to(journaled) == [journaled_reply]  # the journal said it was sent
    assert await stored_reply_id(bot, journaled) == journaled_reply["message_id"]
    assert len(bot.api.replies_to(suspect)) == 1
    await wait_for(lambda: journal.stat().st_size == 0)  # moved into the database, then compacted
    await wait_for_done(bot, 6)
    rows = await inbox_rows(bot)
    assert rows[answered_update].status == InboxStatus.DONE and rows[answered_update].attempts == 2
    assert rows[90_001].status == rows[90_002].status == rows[90_004].status == InboxStatus.DONE
    assert rows[90_004].attempts == 3 and rows[journaled_update].status == InboxStatus.DONE
    assert rows[90_003].status == InboxStatus.FAILED
    assert await verdict_for(bot, poison) is None
    assert any(
        "update 90003 skipped" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


async def test_a_graceful_stop_is_bounded_and_a_cut_reply_goes_out_once_after_the_restart(start_bot):
    bot = await start_bot(shutdown_timeout_seconds=2.0, telegram_timeout_seconds=30.0)
    bot.api.hang_s = 60.0
    bot.api.inject("sendMessage", Fault.HANG)
    message = bot.api.push_message("답장이 걸려 있는 동안 멈춰요")
    await bot.api.wait_until(lambda: bool(bot.api.calls("sendMessage", ok_only=False)))

    started = time.monotonic()
    await bot.runner.stop()
    assert time.monotonic() - started < 2.0 + 1.5  # the deadline is the feature; the margin is teardown
    (row,) = await outbox_rows(bot)
    assert row.status == OutboxStatus.PENDING
    assert all(r.status == InboxStatus.PENDING for r in (await inbox_rows(bot)).values())

    bot = await start_bot()
    reply = await bot.api.wait_for_reply(message)
    assert VERDICT_RE.match(reply["text"]) and reply["reply_markup"]["inline_keyboard"]
    await bot.api.wait_for_reply(bot.api.push_message("다음 리뷰"))
    assert len(bot.api.replies_to(message)) == 1
    assert await stored_reply_id(bot, message) == reply["message_id"]


async def test_get_updates_trouble_is_one_warning_line_and_fetching_goes_on(start_bot, caplog):
    bot = await start_bot()
    bot.api.inject("getUpdates", Fault.SERVER_ERROR, Fault.RATE_LIMIT)
    message = bot.api.push_message("잠깐 문제가 있어도 답해 주세요")
    reply = await bot.api.wait_for_reply(message, timeout=30)

    assert VERDICT_RE.match(reply["text"])
    lines = [r for r in caplog.records if r.name == "bot.telegram.runner" and "getUpdates" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    assert "500" in lines[0].getMessage() or "Internal Server Error" in lines[0].getMessage()
    assert "429" in lines[1].getMessage()
    ours = [r for r in caplog.records if r.levelno >= logging.ERROR and not r.name.startswith("tornado")]
    assert ours == []


@pytest.mark.parametrize(
    ("status", "says"), [(401, "TELEGRAM_BOT_TOKEN"), (404, "TELEGRAM_BOT_TOKEN"), (409, "409 Conflict")]
)
async def test_a_refused_token_is_retried_for_a_bounded_time_then_the_runner_stops(
    start_bot, caplog, status, says
):
    bot = await start_bot(telegram_auth_retry_seconds=2.0)
    await bot.api.wait_for_reply(bot.api.push_message("토큰이 바뀌기 전 리뷰"))
    refused_at = time.monotonic()
    bot.api.refuse("getUpdates", status)

    await asyncio.wait_for(bot.runner.stopped.wait(), 20)
    assert time.monotonic() - refused_at < 2.0 + 3.0  # bounded: the window, one backoff step, the stop
    assert bot.runner.fatal is not None
    error = str(bot.runner.fatal)
    assert says in error and "\n" not in error and TOKEN not in error
    retries = [r for r in caplog.records if "getUpdates failed" in r.getMessage()]
    assert len(retries) >= 2 and all(r.levelno == logging.WARNING for r in retries)


async def test_the_webhook_answers_200_only_once_the_update_is_stored(start_bot):
    secret = "webhook-secret-0123456789"
    bot = await start_bot(
        webhook=True,
        webhook_url="https://bot.example.com/telegram/hook",
        webhook_secret=secret,
        webhook_listen="127.0.0.1",
        webhook_port=0,
    )
    assert bot.api.webhook["url"] == "https://bot.example.com/telegram/hook"
    assert bot.api.webhook["secret_token"] == secret
    assert not bot.api.calls("getUpdates")
    url = f"http://127.0.0.1:{bot.runner.webhook_port}/telegram/hook"
    header = {"X-Telegram-Bot-Api-Secret-Token": secret}
    message = a_message(7_000_001, "웹훅으로 온 리뷰 재밌어요")

    async with httpx.AsyncClient(timeout=10) as client:
        forged = await client.post(url, json={"update_id": 500, "message": message}, headers={})
        wrong = await client.post(
            url,
            json={"update_id": 500, "message": message},
            headers={**header, "X-Telegram-Bot-Api-Secret-Token": "x"},
        )
        garbage = await client.post(url, content=b"{not json", headers=header)
        assert (forged.status_code, wrong.status_code, garbage.status_code) == (403, 403, 400)
        assert await inbox_rows(bot) == {}

        async with bot.session() as session:  # the inbox cannot store: 5xx, so Telegram tries again
            await session.execute(text("ALTER TABLE telegram_updates RENAME TO telegram_updates_away"))
        failed = await client.post(url, json={"update_id": 500, "message": message}, headers=header)
        async with bot.session() as session:
            await session.execute(text("ALTER TABLE telegram_updates_away RENAME TO telegram_updates"))
        assert failed.status_code == 500
        assert bot.api.replies_to(message) == []

        accepted = await client.post(url, json={"update_id": 500, "message": message}, headers=header)
        assert accepted.status_code == 200
        assert 500 in await inbox_rows(bot)  # stored by the time Telegram hears 200
        reply = await bot.api.wait_for_reply(message)
        again = await client.post(url, json={"update_id": 500, "message": message}, headers=header)
        assert again.status_code == 200  # a re-delivery is acknowledged ...

    assert VERDICT_RE.match(reply["text"])
    async with bot.session() as session:
        assert (await session.scalar(select(Verdict).where(Verdict.message_id == 7_000_001))) is not None
    await asyncio.sleep(0.5)
    assert len(bot.api.replies_to(message)) == 1  # ... and not answered twice
    await wait_for_done(bot, 1)


async def test_a_deleted_database_file_stops_the_bot_before_it_confirms_anything_more(
    start_bot, database_url
):
    bot = await start_bot()
    await bot.api.wait_for_reply(bot.api.push_message("삭제 전 마지막 리뷰"))
    database = sqlite_path(database_url)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{database}{suffix}")
    later = [bot.api.push_message(f"삭제 후 리뷰 {i}", chat_id=4000 + i) for i in range(3)]

    await asyncio.wait_for(bot.runner.stopped.wait(), 15)
    assert bot.runner.fatal is not None and "was deleted" in str(bot.runner.fatal)
    later_ids = [bot.api.update_of_message[(m["chat"]["id"], m["message_id"])] for m in later]
    assert not [i for i in later_ids if i in bot.api.confirmed_at]  # Telegram keeps them for the next run
    assert not [m for m in later if bot.api.replies_to(m)]
