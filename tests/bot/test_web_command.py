"""`/web` through the real bot (Bot API stand-in, inbox, outbox): a one-time login link for admins and reviewers in a
private chat only; and the web app's counters (verdicts, updates, Telegram errors) move when a review arrives through
the bot."""

from __future__ import annotations

import hashlib
import re

import pytest
from bot_identity import ADMIN_ID
from fake_telegram import Fault
from sqlalchemy import select

from bot import metrics, storage
from bot.moderation import texts
from bot.storage import OutboxMessage, OutboxStatus, WebLogin

pytestmark = pytest.mark.timeout(600)  # the first test trains the session's scratch model

USER, REVIEWER = 1001, 3003


async def test_web_gives_a_one_time_link_in_a_private_chat_to_admins_and_reviewers_only(start_bot):
    bot = await start_bot(
        reviewer_ids=frozenset({REVIEWER}), web_port=8080, web_base_url="https://moderator.example/"
    )
    reply = await bot.api.wait_for_reply(bot.api.push_message("/web", user_id=ADMIN_ID, chat_id=ADMIN_ID))
    match = re.search(r"https://moderator\.example/login/([A-Za-z0-9_-]{43})$", reply["text"])
    assert match, reply["text"]
    reviewer = await bot.api.wait_for_reply(bot.api.push_message("/web", user_id=REVIEWER, chat_id=REVIEWER))
    assert "/login/" in reviewer["text"]
    refused = await bot.api.wait_for_reply(bot.api.push_message("/web", user_id=USER, chat_id=USER))
    assert refused["text"] == texts.WEB_ONLY
    group = await bot.api.wait_for_reply(
        bot.api.push_message("/web", user_id=ADMIN_ID, chat_id=-100555, chat_type="supergroup")
    )
    assert group["text"] == texts.WEB_PRIVATE_ONLY
    async with bot.session() as session:
        logins = list(await session.scalars(select(WebLogin).order_by(WebLogin.id)))
    assert [login.user_id for login in logins] == [ADMIN_ID, REVIEWER]
    assert logins[0].token_hash == hashlib.sha256(match.group(1).encode()).hexdigest()
    # The sent link is not kept: its outbox row keeps a link-free text until retention purges it.
    async with bot.session() as session:
        kept = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == ADMIN_ID)))
    assert [row.status for row in kept] == [OutboxStatus.SENT]
    assert kept[0].text == texts.WEB_LINK_SENT.format(minutes=10)
    assert kept[0].text_after_send is None
    assert all(match.group(1) not in (row.text or "") for row in kept)


async def test_web_says_when_the_web_app_is_off(start_bot):
    bot = await start_bot()
    reply = await bot.api.wait_for_reply(bot.api.push_message("/web", user_id=ADMIN_ID, chat_id=ADMIN_ID))
    assert reply["text"] == texts.WEB_OFF


async def test_web_links_to_a_web_app_in_its_own_process(start_bot):
    """WEB_BASE_URL without WEB_PORT: `moderator web` serves elsewhere (make cluster); the bot only links to it."""
    bot = await start_bot(web_base_url="https://moderator.example")
    reply = await bot.api.wait_for_reply(bot.api.push_message("/web", user_id=ADMIN_ID, chat_id=ADMIN_ID))
    assert "https://moderator.example/login/" in reply["text"]


async def test_a_review_through_the_bot_moves_the_verdict_counter(start_bot):
    bot = await start_bot()
    counter = metrics.VERDICTS

    def sentiment_verdicts() -> float:
        return sum(
            sample.value
            for family in counter.collect()
            for sample in family.samples
            if sample.name == "moderator_verdicts_total" and sample.labels["task"] == "sentiment"
        )

    def sample(name: str, **labels: str) -> float:
        return sum(
            sample.value
            for collector in (metrics.UPDATES, metrics.TELEGRAM_ERRORS)
            for family in collector.collect()
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    before = sentiment_verdicts()
    messages = sample("moderator_telegram_updates_total", kind="message")
    server_errors = sample("moderator_telegram_errors_total", method="sendMessage", error="NetworkError")
    bot.api.inject("sendMessage", Fault.SERVER_ERROR)  # the reply's first attempt gets a 500, then goes out
    await bot.api.wait_for_reply(
        bot.api.push_message("배우들 연기가 정말 좋았어요", user_id=USER, chat_id=USER)
    )
    assert sentiment_verdicts() - before == 1
    assert sample("moderator_telegram_updates_total", kind="message") - messages == 1
    assert (
        sample("moderator_telegram_errors_total", method="sendMessage", error="NetworkError") - server_errors
        == 1
    )


async def test_a_known_groups_telegram_admin_gets_a_link_and_a_member_does_not(start_bot):
    bot = await start_bot(web_port=8080)
    group, group_admin, member = -1004444, 4004, 4005
    bot.api.set_member(group, group_admin, "administrator")
    bot.api.set_member(group, member, "member")
    # Before the group is known (no policy, no decisions): no link, whoever administers it.
    early = await bot.api.wait_for_reply(
        bot.api.push_message("/web", user_id=group_admin, chat_id=group_admin)
    )
    assert early["text"] == texts.WEB_ONLY
    async with bot.session() as session:
        await storage.update_chat_policy(session, chat_id=group, updated_by=group_admin, mode="act")
    reply = await bot.api.wait_for_reply(
        bot.api.push_message("/web", user_id=group_admin, chat_id=group_admin)
    )
    assert "/login/" in reply["text"], reply["text"]
    refused = await bot.api.wait_for_reply(bot.api.push_message("/web", user_id=member, chat_id=member))
    assert refused["text"] == texts.WEB_ONLY
    async with bot.session() as session:
        logins = list(await session.scalars(select(WebLogin)))
    assert [login.user_id for login in logins] == [group_admin]
