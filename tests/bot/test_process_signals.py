"""Real `moderator run` processes against the Bot API stand-in, killed and stopped with real signals.

- SIGKILL in the middle of a burst of 200 reviews, then a restart: nothing is lost, every update Telegram
  considers delivered was stored before it was confirmed, and the only replies sent twice are the ones caught
  in the at-least-once window (Telegram had accepted them, the commit marking them sent had not happened).
- SIGTERM while a sendMessage hangs: exit 0 within SHUTDOWN_TIMEOUT_SECONDS; the reply is sent once after
  the restart.
- A token refused by getUpdates (or by getMe at start-up): exit 1 within the bound, one `error:` line, and
  the token nowhere in stdout or stderr, also with -v.
- A deleted database file: exit 1 with one line, nothing more confirmed.
- `moderator chat` starts without alembic's INFO lines.
- With WEB_PORT, `moderator run` serves the web app: the bot's `/web` link logs in, a review moves `/metrics`, and
  SIGTERM stops both.

Every wait is bounded; the network is 127.0.0.1 only. The figures of docs/reliability.md are recorded with
`bench.reliability.record`: `RELIABILITY ...` lines (run with -s), and with RELIABILITY_RESULTS=path (`make bench`)
the results file bench/results/reliability.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from bot_identity import ADMIN_ID, TOKEN
from bot_process import START_TIMEOUT_S, BotProcess, bot_environment, register_active_model
from fake_telegram import FakeBotApi, Fault
from prometheus_client.parser import text_string_to_metric_families

from bench.reliability import record
from bot import storage

# Kill moments, as replies sent before the SIGKILL; docs/reliability.md was measured with "1,20,100,190".
KILL_AFTER = [int(n) for n in os.environ.get("RELIABILITY_KILL_AFTER", "20,100").split(",")]
BURST = 200
WRONG_TOKEN = "987654321:AAH-wrong-token-never-print-me-0123"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
async def moderator(tmp_path: Path, bot_model_dir: Path, api: FakeBotApi):
    """Starts `moderator ...` processes configured by environment variables (cwd: a temp dir, so no .env),
    against a SQLite file with the test model registered and active. Yields (start, database path)."""
    database = tmp_path / "moderator.db"
    url = f"sqlite+aiosqlite:///{database}"
    await register_active_model(url, bot_model_dir)
    base_env = bot_environment(url, api, tmp_path, TELEGRAM_POLL_TIMEOUT_SECONDS="1", ADMIN_IDS=str(ADMIN_ID))
    processes: list[BotProcess] = []

    async def start(*args: str, stdin: bytes | None = None, **env: str) -> BotProcess:
        process = BotProcess({**base_env, **env}, tmp_path, *(args or ("run",)))
        processes.append(process)
        return await process.start(stdin)

    yield start, database
    for process in processes:
        await process.ensure_stopped()


def query(database: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(sql).fetchall()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def assert_no_token(output: str, token: str) -> None:
    assert token not in output and quote(token, safe="") not in output
    assert token.split(":")[1] not in output  # not even the secret half


async def wait_polling(api: FakeBotApi, process: BotProcess) -> None:
    try:
        await api.wait_until(lambda: bool(api.calls("getUpdates")), timeout=START_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"the bot never polled:\n{process.output[-3000:]}") from None


@pytest.mark.parametrize("kill_after", KILL_AFTER)
async def test_sigkill_mid_burst_loses_nothing_and_repeats_only_sends_caught_in_flight(
    moderator, api, kill_after
):
    start, database = moderator
    bot = await start()
    await wait_polling(api, bot)
    messages = [
        api.push_message(
            f"리뷰 {i}번: 이 영화는 {'최고' if i % 2 else '최악'}이에요", user_id=5000 + i, chat_id=5000 + i
        )
        for i in range(BURST)
    ]
    await api.wait_until(lambda: len(api.sent()) >= kill_after, timeout=START_TIMEOUT_S)
    bot.signal(signal.SIGKILL)
    assert await bot.wait(10) == -signal.SIGKILL

    replies_at_kill = len(api.sent())
    confirmed = set(api.confirmed_at)
    stored = {row[0] for row in query(database, "SELECT update_id FROM telegram_updates")}
    assert confirmed <= stored, "an update was confirmed to Telegram before it was stored"
    verdicts_at_kill = query(database, "SELECT count(*) FROM verdicts")[0][0]
    # Replies Telegram accepted that the killed process had not recorded as sent (neither committed nor in
    # the journal): the at-least-once window; exactly these are sent again after the restart.
    accepted = {(m["chat"]["id"], m["reply_to_message"]["message_id"]) for m in api.sent()}
    journal = Path(f"{database}-sent.journal")
    journaled = {int(line.split()[0]) for line in journal.read_text().splitlines() if len(line.split()) == 2}
    pending = query(
        database, "SELECT id, chat_id, reply_to_message_id FROM outbox_messages WHERE status = 'pending'"
    )
    caught_in_flight = [row for row in pending if (row[1], row[2]) in accepted and row[0] not in journaled]

    restarted = await start()
    await api.wait_until(lambda: all(api.replies_to(m) for m in messages), timeout=START_TIMEOUT_S)
    await asyncio.sleep(1.0)  # a duplicate, if any, would arrive now
    restarted.signal(signal.SIGTERM)
    assert await restarted.wait(30) == 0

    answered = sum(1 for m in messages if api.replies_to(m))
    duplicated = sum(1 for m in messages if len(api.replies_to(m)) > 1)
    stored_verdicts = query(database, "SELECT count(DISTINCT message_id) FROM verdicts")[0][0]
    record(
        f"sigkill_after_{kill_after}",
        killed_after_replies=kill_after,
        replies_at_kill=replies_at_kill,
        confirmed_at_kill=len(confirmed),
        stored_updates_at_kill=len(stored),
        verdicts_at_kill=verdicts_at_kill,
        sent=BURST,
        stored_verdicts=stored_verdicts,
        answered=answered,
        lost=BURST - answered,
        duplicated=duplicated,
        caught_in_flight=len(caught_in_flight),
        journaled_at_kill=len(journaled),
    )
    assert answered == BURST and stored_verdicts == BURST
    assert duplicated == len(caught_in_flight)
    assert "Traceback" not in restarted.output


async def test_sigterm_with_a_hanging_send_exits_0_within_the_deadline_and_the_reply_is_sent_once_later(
    moderator, api
):
    start, _ = moderator
    api.hang_s = 120.0
    api.inject("sendMessage", Fault.HANG)
    bot = await start(TELEGRAM_TIMEOUT_SECONDS="60")  # the send hangs past any deadline; SHUTDOWN default 8
    await wait_polling(api, bot)
    message = api.push_message("멈추는 동안 답장이 걸려 있어요")
    await api.wait_until(lambda: bool(api.calls("sendMessage", ok_only=False)), timeout=START_TIMEOUT_S)

    signalled = time.monotonic()
    bot.signal(signal.SIGTERM)
    code = await bot.wait(30)
    stop_seconds = time.monotonic() - signalled
    assert code == 0, bot.output[-3000:]
    assert stop_seconds < 8.0 + 4.0  # SHUTDOWN_TIMEOUT_SECONDS (default) + process teardown
    assert "Traceback" not in bot.output and api.replies_to(message) == []

    restarted = await start()
    reply = await api.wait_for_reply(message, timeout=START_TIMEOUT_S)
    signalled = time.monotonic()
    restarted.signal(signal.SIGTERM)
    idle_code = await restarted.wait(30)
    idle_stop_seconds = time.monotonic() - signalled
    record(
        "sigterm",
        shutdown_timeout_seconds=8,  # the default
        request_timeout_seconds=60,
        hanging_send_stop_seconds=round(stop_seconds, 2),
        hanging_send_exit_code=code,
        idle_stop_seconds=round(idle_stop_seconds, 2),
        idle_exit_code=idle_code,
        replies_after_restart=len(api.replies_to(message)),
    )
    assert idle_code == 0
    assert api.replies_to(message) == [reply]


async def test_a_token_refused_by_get_updates_exits_1_within_the_bound_with_one_line(moderator, api):
    start, _ = moderator
    bot = await start(TELEGRAM_AUTH_RETRY_SECONDS="3")
    await wait_polling(api, bot)
    await api.wait_for_reply(api.push_message("토큰이 취소되기 전 리뷰"), timeout=60)
    refused_at = time.monotonic()
    api.refuse("getUpdates", 401)

    code = await bot.wait(60)
    exit_seconds = time.monotonic() - refused_at
    record(
        "get_updates_401",
        auth_retry_seconds=3,
        exit_code=code,
        exit_seconds_after_first_401=round(exit_seconds, 2),
        error_lines=error_lines(bot.output),
    )
    assert code == 1
    assert exit_seconds < 3.0 + 8.0  # the retry window + one backoff step + the bounded stop
    (line,) = error_lines(bot.output)
    assert "TELEGRAM_BOT_TOKEN" in line and bot.stderr[-1].startswith("error:")
    assert "Traceback" not in bot.output
    assert_no_token(bot.output, TOKEN)
    assert "getUpdates failed" in bot.output  # the retries were logged


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
async def test_a_token_rejected_at_start_up_exits_1_and_is_never_printed(moderator, api, verbose):
    start, _ = moderator
    args = ("-v", "run") if verbose else ("run",)
    bot = await start(*args, TELEGRAM_BOT_TOKEN=WRONG_TOKEN, TELEGRAM_AUTH_RETRY_SECONDS="2")
    code = await bot.wait(START_TIMEOUT_S)
    assert code == 1, bot.output[-3000:]
    assert api.wrong_token_calls and api.wrong_token_calls[0][0] == "getMe"
    exit_seconds = time.monotonic() - api.wrong_token_calls[0][1]
    assert exit_seconds < 2.0 + 8.0
    assert_no_token(bot.output, WRONG_TOKEN)
    (line,) = error_lines(bot.output)
    assert "TELEGRAM_BOT_TOKEN" in line
    if not verbose:
        assert "Traceback" not in bot.output
    record(
        f"get_me_404_{'verbose' if verbose else 'quiet'}",
        auth_retry_seconds=2,
        exit_code=code,
        exit_seconds_after_first_404=round(exit_seconds, 2),
        error_lines=error_lines(bot.output),
        token_in_output=False,  # asserted above, for stdout and stderr
    )


async def test_a_deleted_database_file_exits_1_with_one_line_and_confirms_nothing_more(moderator, api):
    start, database = moderator
    bot = await start()
    await wait_polling(api, bot)
    await api.wait_for_reply(api.push_message("삭제되기 전 리뷰"), timeout=60)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{database}{suffix}")
    deleted_at = time.monotonic()
    later = api.push_message("삭제된 뒤의 리뷰")

    code = await bot.wait(30)
    exit_seconds = time.monotonic() - deleted_at
    assert code == 1
    (line,) = error_lines(bot.output)
    assert "was deleted" in line
    later_confirmed = api.update_of_message[(later["chat"]["id"], later["message_id"])] in api.confirmed_at
    assert not later_confirmed
    record(
        "deleted_database",
        exit_code=code,
        exit_seconds_after_deletion=round(exit_seconds, 2),
        error_lines=error_lines(bot.output),
        later_update_confirmed=later_confirmed,
    )


async def test_chat_start_up_prints_no_alembic_info_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    env["MODEL_DIR"] = str(tmp_path / "models")
    quiet = await BotProcess(env, tmp_path, "chat").start(stdin=b"")
    assert await quiet.wait(120) == 2  # no model yet: explained, exit 2
    verbose = await BotProcess(env, tmp_path, "-v", "chat").start(stdin=b"")
    assert await verbose.wait(120) == 2
    assert "alembic" in verbose.output  # the lines exist, at -v ...
    assert "alembic" not in quiet.output  # ... and stay out of a normal start
    assert "moderator train" in quiet.output


GROUP = -1001234500000
GROUP_BURST = 120
GROUP_AUTHORS = 20  # six toxic messages each: strikes 1..6, muted from the third


async def test_sigkill_mid_burst_of_toxic_group_messages_deletes_each_once_and_counts_each_strike_once(
    moderator, api, toxic_everywhere_model_dir
):
    """A group in `act` (mute after three strikes) gets a burst of messages the model calls toxic; the bot is
    killed mid-burst and restarted. Every message is deleted exactly once, each decision and strike exists once,
    every author's strikes run 1..6 without a gap or a repeat, and each mute is applied once."""
    start, database = moderator
    url = f"sqlite+aiosqlite:///{database}"
    engine = storage.create_engine(url)
    async with storage.make_session_factory(engine).begin() as session:
        await storage.register_model_version(
            session,
            path=str(toxic_everywhere_model_dir),
            base_checkpoint="test",
            metrics=None,
            status=storage.ModelStatus.ACTIVE,
            task=storage.Task.TOXICITY,
        )
        await storage.update_chat_policy(
            session, chat_id=GROUP, updated_by=ADMIN_ID, mode=storage.ChatMode.ACT, mute_after_strikes=3
        )
    await engine.dispose()
    api.set_bot_rights(GROUP, can_delete_messages=True, can_restrict_members=True)
    bot = await start()
    await wait_polling(api, bot)
    messages = [
        api.push_message(
            f"{i}번째 메시지: 이 사람 진짜 너무하네요",
            chat_id=GROUP,
            chat_type="supergroup",
            user_id=7000 + i % GROUP_AUTHORS,
        )
        for i in range(GROUP_BURST)
    ]
    try:
        await api.wait_until(lambda: len(api.deleted) >= GROUP_BURST // 3, timeout=START_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"nothing deleted:\n{bot.output[-3000:]}") from None
    bot.signal(signal.SIGKILL)
    assert await bot.wait(10) == -signal.SIGKILL
    deleted_at_kill = len(api.deleted)
    decided_at_kill = query(database, "SELECT count(*) FROM moderation_decisions")[0][0]
    pending_at_kill = query(database, "SELECT count(*) FROM moderation_actions WHERE status = 'pending'")[0][
        0
    ]

    restarted = await start()
    await api.wait_until(lambda: len(set(api.deleted)) >= GROUP_BURST, timeout=START_TIMEOUT_S)
    await asyncio.sleep(1.5)  # a repeated action, if any, would happen now
    restarted.signal(signal.SIGTERM)
    assert await restarted.wait(30) == 0

    targets = {(GROUP, m["message_id"]) for m in messages}
    delete_calls = api.calls("deleteMessage", ok_only=False)
    decisions = query(database, "SELECT user_id, strikes FROM moderation_decisions")
    strikes_by_author: dict[int, list[int]] = {}
    for user_id, strikes in decisions:
        strikes_by_author.setdefault(user_id, []).append(strikes)
    mutes = api.calls("restrictChatMember")
    mute_actions = query(
        database, "SELECT count(*), sum(status = 'done') FROM moderation_actions WHERE kind = 'mute'"
    )
    record(
        "group_actions_sigkill",
        sent=GROUP_BURST,
        deleted_at_kill=deleted_at_kill,
        decided_at_kill=decided_at_kill,
        pending_actions_at_kill=pending_at_kill,
        decisions=len(decisions),
        deleted=len(set(api.deleted)),
        deleted_twice=len(api.deleted) - len(set(api.deleted)),
        delete_calls=len(delete_calls),
        repeated_delete_calls=len(delete_calls) - len(set(api.deleted)),
        mute_actions=mute_actions[0][0],
        mutes_applied=len(mutes),
        lost=len(targets - set(api.deleted)),
    )
    assert set(api.deleted) == targets and len(api.deleted) == GROUP_BURST  # each deleted exactly once
    assert len(decisions) == GROUP_BURST
    assert all(sorted(s) == list(range(1, 7)) for s in strikes_by_author.values())
    assert len(strikes_by_author) == GROUP_AUTHORS
    assert mute_actions[0] == (GROUP_AUTHORS * 4, GROUP_AUTHORS * 4)  # strikes 3..6 each mute (longer)
    assert len(mutes) <= GROUP_AUTHORS * 4 + pending_at_kill  # a mute repeats only if caught in flight
    assert "Traceback" not in restarted.output


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def counted_verdicts(metrics_text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "moderator_verdicts_total"
    )


async def test_moderator_run_serves_the_web_app_logs_in_by_the_bots_link_and_stops_both_on_sigterm(
    moderator, api
):
    start, _ = moderator
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    bot = await start(WEB_PORT=str(port), WEB_SESSION_SECRET="process-test-session-secret-0123456789")
    await wait_polling(api, bot)
    async with httpx.AsyncClient(base_url=web, timeout=10.0) as client:
        assert (await client.get("/healthz")).text == "ok\n"
        assert (await client.get("/readyz")).status_code == 200
        before = counted_verdicts((await client.get("/metrics")).text)

        # The bot sends the link; the web app in the same process takes it, once.
        reply = await api.wait_for_reply(api.push_message("/web", user_id=ADMIN_ID, chat_id=ADMIN_ID))
        link = re.search(r"http://127\.0\.0\.1:\d+/login/[A-Za-z0-9_-]+", reply["text"])
        assert link and link.group(0).startswith(web), reply["text"]
        path = httpx.URL(link.group(0)).path
        page = await client.get(path)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert page.status_code == 200 and csrf
        assert (await client.post(path, data={"csrf_token": csrf.group(1)})).status_code == 303
        models = await client.get("/models")
        assert models.status_code == 200
        assert re.search(r'<tr class="active" id="version-1">', models.text)  # the fixture's active version

        # A review sent to the bot moves the counters the web app serves.
        await api.wait_for_reply(api.push_message("배우들 연기가 정말 좋았어요", user_id=1001, chat_id=1001))
        assert counted_verdicts((await client.get("/metrics")).text) - before == 1

        bot.signal(signal.SIGTERM)
        assert await bot.wait(30) == 0, bot.output[-3000:]
        assert "Traceback" not in bot.output
        with pytest.raises(httpx.ConnectError):  # the web app stopped with the bot
            await client.get("/healthz")
