"""Fuzzed updates through the real runner, python-telegram-bot and the Bot API stand-in: no handler raises,
every callback is answered, every reply fits Telegram's limits. 400 updates here (7 s on the development machine;
1,000 took 79 s: once the fuzzer's one group has had 20 messages in a minute, the bot keeps Telegram's flood limit
and waits, and CI has 25 minutes); bench/bench_fuzz.py runs 10,000 of the same kind (docs/reliability.md)."""

from __future__ import annotations

import logging

import pytest
from fuzz_updates import run_fuzz, utf16_length

from bot.telegram.limits import CALLBACK_ANSWER_LIMIT, MESSAGE_TEXT_LIMIT, clip

FUZZ_SEED = 20261125
FUZZ_COUNT = 400


@pytest.mark.timeout(900)
async def test_hundreds_of_fuzzed_updates_raise_nothing_and_every_callback_is_answered(start_bot, caplog):
    bot = await start_bot(feedback_rate_limit_per_hour=10_000)
    caplog.set_level(logging.WARNING)  # DEBUG records of hundreds of updates would only slow the run
    logging.getLogger("httpx").setLevel(logging.WARNING)

    report = await run_fuzz(bot, count=FUZZ_COUNT, seed=FUZZ_SEED)

    assert report.updates == FUZZ_COUNT
    assert report.handler_exceptions == []
    # The mix the fuzzer draws (about a fifth callbacks, half private messages): enough of each kind was exercised.
    assert report.callbacks > FUZZ_COUNT // 10 and report.unanswered_callbacks == []
    assert report.over_limit == []
    assert report.not_processed == []
    assert report.private_messages > FUZZ_COUNT * 3 // 10 and report.private_messages_not_answered_once == []
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_outgoing_texts_are_clipped_to_telegrams_limits_where_every_request_goes_out(start_bot):
    bot = await start_bot()
    telegram = bot.application.bot
    await telegram.send_message(1001, "가" * 5000)
    await telegram.send_message(1001, "😀" * 3000)  # 3,000 characters, 6,000 UTF-16 units
    await telegram.answer_callback_query("cq-1", text="긴 안내문 " * 100)

    long_text, emoji = (r.params["text"] for r in bot.api.calls("sendMessage"))
    assert utf16_length(long_text) == MESSAGE_TEXT_LIMIT and long_text.endswith("…")
    assert utf16_length(emoji) <= MESSAGE_TEXT_LIMIT and emoji.endswith("😀…")
    (answer,) = bot.api.calls("answerCallbackQuery")
    assert len(answer.params["text"]) == CALLBACK_ANSWER_LIMIT and answer.params["text"].endswith("…")


def test_clip_counts_utf16_units_and_never_splits_a_character():
    assert clip("짧은 글", 10) == "짧은 글"
    assert clip("abcdef", 4) == "abc…"
    assert clip("😀😀😀", 4) == "😀…"  # 😀 takes two units: "😀😀…" would be five
    assert utf16_length(clip("😀" * 10, 7)) <= 7
    assert clip("x" * 4096, MESSAGE_TEXT_LIMIT) == "x" * 4096
