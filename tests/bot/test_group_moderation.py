"""Group moderation through the real python-telegram-bot stack and the Bot API stand-in: every group message is
judged silently; `watch` logs what it would do and touches nothing; `act` deletes, mutes and bans by the group's
policy, each action once; only the group's admins set the policy or answer the log chat, and their answers
become trusted labels."""

from __future__ import annotations

import asyncio

from bot_identity import TOKEN
from bot_records import callback_answers, verdict_for
from fake_telegram import Fault
from sqlalchemy import select

from bot.moderation import group_texts
from bot.storage import (
    ActionKind,
    ActionStatus,
    ChatMode,
    Feedback,
    ModerationAction,
    ModerationDecision,
    Task,
)

GROUP = -1001234567890
OTHER_GROUP = -1009876543210
LOG_CHAT = -1005555555555
GROUP_ADMIN = 3001
MEMBER = 3002
OTHER_ADMIN = 3003
TOXIC = "감독 이 새끼 진짜 죽여버리고 싶네"


def say(bot, text: str, *, user_id: int = MEMBER, chat_id: int = GROUP, **extra):
    return bot.api.push_message(text, chat_id=chat_id, user_id=user_id, chat_type="supergroup", **extra)


async def settle(bot, predicate=lambda: True, timeout: float = 20.0) -> None:
    """Wait until every queued update is processed (confirmed and done) and `predicate` holds."""
    await bot.api.wait_until(predicate, timeout=timeout)
    for _ in range(200):
        if not bot.runner._inflight and not bot.api._updates:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)


async def decisions(bot) -> list[ModerationDecision]:
    async with bot.session() as session:
        return list((await session.scalars(select(ModerationDecision).order_by(ModerationDecision.id))).all())


async def actions(bot) -> list[ModerationAction]:
    async with bot.session() as session:
        return list((await session.scalars(select(ModerationAction).order_by(ModerationAction.id))).all())


def buttons(message) -> list[str]:
    return [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row]


async def configure(bot, *commands: str, chat_id: int = GROUP) -> list[dict]:
    answers = []
    for command in commands:
        message = say(bot, command, user_id=GROUP_ADMIN, chat_id=chat_id)
        answers.append(await bot.api.wait_for_reply(message))
    return answers


def admins_and_rights(api, *, delete: bool = True, restrict: bool = True) -> None:
    api.set_member(GROUP, GROUP_ADMIN, "administrator", can_delete_messages=True, can_restrict_members=True)
    api.set_member(LOG_CHAT, GROUP_ADMIN, "creator")
    api.set_member(OTHER_GROUP, OTHER_ADMIN, "administrator")
    api.set_bot_rights(GROUP, can_delete_messages=delete, can_restrict_members=restrict)


async def test_watch_is_the_default_logs_what_it_would_do_and_touches_nothing(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    await configure(bot, f"/settings log {LOG_CHAT}")
    toxic = say(bot, TOXIC)
    clean_looking = say(bot, "배우들 연기가 정말 좋았어요")  # the model calls everything toxic: logged too
    await settle(bot, lambda: len(bot.api.sent(chat_id=LOG_CHAT)) >= 2)

    # Silent in the group, nothing deleted or restricted; each message judged by both tasks.
    assert bot.api.replies_to(toxic) == [] and bot.api.replies_to(clean_looking) == []
    assert bot.api.deleted == [] and not bot.api.calls("restrictChatMember")
    assert (await verdict_for(bot, toxic, Task.TOXICITY)).label_name == "공격적"
    assert (await verdict_for(bot, clean_looking)) is not None
    rows = await decisions(bot)
    assert [(d.message_id, d.mode, d.strikes) for d in rows] == [
        (toxic["message_id"], ChatMode.WATCH, 1),
        (clean_looking["message_id"], ChatMode.WATCH, 2),
    ]
    assert await actions(bot) == []  # watch: no action row at all
    log = bot.api.sent(chat_id=LOG_CHAT)
    assert len(log) == 2
    assert log[0]["text"].startswith(group_texts.LOG_WATCHED.format(actions="메시지 삭제"))
    assert TOXIC in log[0]["text"] and f"({MEMBER})" in log[0]["text"]
    assert buttons(log[0]) == [f"gm:undo:{rows[0].id}", f"gm:ok:{rows[0].id}", f"gm:ban:{rows[0].id}"]


async def test_act_deletes_mutes_after_strikes_and_each_action_happens_once(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    answers = await configure(
        bot, "/settings mode act", f"/settings log {LOG_CHAT}", "/settings mute 2 30", "/settings action warn"
    )
    assert all(a["text"].startswith("✅") for a in answers)
    first = say(bot, TOXIC)
    await settle(bot, lambda: len(bot.api.deleted) >= 1)
    second = say(bot, TOXIC + "!!")
    await settle(bot, lambda: bool(bot.api.calls("restrictChatMember")))

    assert bot.api.deleted == [(GROUP, first["message_id"]), (GROUP, second["message_id"])]
    assert bot.api.member_status(GROUP, MEMBER) == "restricted"
    mute = bot.api.calls("restrictChatMember")
    assert len(mute) == 1 and int(mute[0].params["user_id"]) == MEMBER
    rows = await decisions(bot)
    assert [(d.strikes, d.mode) for d in rows] == [(1, ChatMode.ACT), (2, ChatMode.ACT)]
    assert [(a.kind, a.status) for a in await actions(bot)] == [
        (ActionKind.DELETE, ActionStatus.DONE),
        (ActionKind.DELETE, ActionStatus.DONE),
        (ActionKind.MUTE, ActionStatus.DONE),
    ]
    await settle(bot, lambda: len([m for m in bot.api.sent(chat_id=GROUP) if m["text"].startswith("⚠️")]) >= 2)
    warnings = [m for m in bot.api.sent(chat_id=GROUP) if m["text"].startswith("⚠️")]
    assert len(warnings) == 2 and "경고 2회" in warnings[1]["text"]
    assert bot.api.replies_to(first) == []  # a deleted message gets no verdict reply
    await settle(bot, lambda: len(bot.api.sent(chat_id=LOG_CHAT)) >= 2)  # the outbox's flush sends the log
    log = bot.api.sent(chat_id=LOG_CHAT)
    assert len(log) == 2 and "채팅 제한" in log[1]["text"]

    # The same message delivered again (a new update for it, as after an edit): decided once, acted on once.
    bot.api.push({"edited_message": {**second, "edit_date": second["date"] + 1}})
    await settle(bot)
    await asyncio.sleep(2.5)  # past the outbox's grace and flush: a second log entry would be sent now
    assert len(bot.api.deleted) == 2 and len(bot.api.calls("restrictChatMember")) == 1
    assert len(await decisions(bot)) == 2 and len(bot.api.sent(chat_id=LOG_CHAT)) == 2


async def test_admins_messages_are_never_acted_on_and_other_bots_are_not_judged(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    await configure(bot, "/settings mode act")
    by_admin = say(bot, TOXIC, user_id=GROUP_ADMIN)
    by_bot = say(bot, TOXIC, user_id=777, **{"from": {"id": 777, "is_bot": True, "first_name": "otherbot"}})
    anonymous = say(bot, TOXIC, sender_chat={"id": GROUP, "type": "supergroup", "title": "g"})
    await settle(bot)
    assert bot.api.deleted == [] and await decisions(bot) == []
    assert await verdict_for(bot, by_bot) is None  # another bot's message is not judged at all
    assert await verdict_for(bot, by_admin) is not None and await verdict_for(bot, anonymous) is not None


async def test_only_the_groups_admins_change_its_policy_or_use_another_chat_as_its_log(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    refused = say(bot, "/settings mode act", user_id=MEMBER)
    assert (await bot.api.wait_for_reply(refused))["text"] == group_texts.SETTINGS_NOT_ADMIN
    # An admin of another group cannot change this one's policy.
    foreign = say(bot, "/settings mode off", user_id=OTHER_ADMIN)
    assert (await bot.api.wait_for_reply(foreign))["text"] == group_texts.SETTINGS_NOT_ADMIN
    # The log chat must be one the admin administers too (else one group's log could go anywhere).
    (answer,) = await configure(bot, f"/settings log {OTHER_GROUP}")
    assert answer["text"] == group_texts.SETTINGS_LOG_NOT_ADMIN.format(chat_id=OTHER_GROUP)
    (answer,) = await configure(bot, "/settings threshold 30")
    assert answer["text"].startswith("값이 올바르지 않아요")
    view = say(bot, "/settings", user_id=MEMBER)  # anyone may look
    text = (await bot.api.wait_for_reply(view))["text"]
    assert group_texts.MODE_NAMES[ChatMode.WATCH] in text and "90%" in text
    policy = await bot.moderation.group_policy(GROUP)
    assert policy.mode is ChatMode.WATCH and policy.log_chat_id is None


async def test_settings_say_when_the_bot_sees_only_mentions_or_lacks_rights(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    bot.api.set_member(GROUP, GROUP_ADMIN, "administrator")
    view = say(bot, "/settings", user_id=GROUP_ADMIN)
    text = (await bot.api.wait_for_reply(view))["text"]
    assert group_texts.READS_ONLY_MENTIONS.strip() in text
    assert group_texts.RIGHTS_MISSING.strip() in text


async def test_a_missing_right_falls_back_to_logging_and_is_said_once(start_bot, toxic_everywhere_model_dir):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api, delete=False)
    await configure(bot, "/settings mode act", f"/settings log {LOG_CHAT}")
    say(bot, TOXIC)
    say(bot, TOXIC + "?")
    await settle(bot, lambda: len(bot.api.sent(chat_id=LOG_CHAT)) >= 3)
    await asyncio.sleep(1.0)  # the flusher had time to send anything more
    assert bot.api.deleted == []
    assert [(a.kind, a.status) for a in await actions(bot)] == [
        (ActionKind.DELETE, ActionStatus.FAILED),
        (ActionKind.DELETE, ActionStatus.FAILED),
    ]
    told = [m for m in bot.api.sent(chat_id=LOG_CHAT) if "권한이 없어" in m["text"]]
    assert len(told) == 1 and "메시지 삭제" in told[0]["text"]


async def test_a_passing_telegram_failure_leaves_the_action_pending_until_it_is_done_once(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    await configure(bot, "/settings mode act")
    bot.api.inject("deleteMessage", *[Fault.SERVER_ERROR] * 4)  # every attempt of the first try fails
    message = say(bot, TOXIC)
    await settle(bot, lambda: bool(bot.api.deleted), timeout=30)
    assert bot.api.deleted == [(GROUP, message["message_id"])]
    assert len(bot.api.calls("deleteMessage")) == 1  # successful calls: one
    assert [(a.kind, a.status) for a in await actions(bot)] == [(ActionKind.DELETE, ActionStatus.DONE)]


async def test_the_log_chats_buttons_count_for_the_groups_admins_only_and_become_trusted_labels(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    await configure(bot, "/settings mode act", f"/settings log {LOG_CHAT}", "/settings mute 1 30")
    message = say(bot, TOXIC)
    await settle(
        bot, lambda: bool(bot.api.calls("restrictChatMember")) and bool(bot.api.sent(chat_id=LOG_CHAT))
    )
    (entry,) = bot.api.sent(chat_id=LOG_CHAT)
    (decision,) = await decisions(bot)

    bot.api.push_callback(data=f"gm:undo:{decision.id}", message=entry, user_id=MEMBER)
    assert (await callback_answers(bot, 1))[-1] == group_texts.LOG_NOT_ADMIN
    bot.api.push_callback(data=f"gm:undo:{decision.id}", message=entry, user_id=OTHER_ADMIN)
    assert (await callback_answers(bot, 2))[-1] == group_texts.LOG_NOT_ADMIN
    assert (await decisions(bot))[0].strike is True

    bot.api.push_callback(data=f"gm:undo:{decision.id}", message=entry, user_id=GROUP_ADMIN)
    assert (await callback_answers(bot, 3))[-1] == group_texts.LOG_UNDONE
    await settle(bot, lambda: len(bot.api.calls("restrictChatMember")) >= 2)
    assert bot.api.member_status(GROUP, MEMBER) == "member"
    (undone,) = await decisions(bot)
    assert undone.strike is False and undone.admin_decision == "wrong" and undone.admin_id == GROUP_ADMIN
    toxicity = await verdict_for(bot, message, Task.TOXICITY)
    async with bot.session() as session:
        labels = (await session.scalars(select(Feedback))).all()
    assert [(f.verdict_id, f.user_id, f.label, f.trusted) for f in labels] == [
        (toxicity.id, GROUP_ADMIN, 0, True)
    ]
    # A second tap (or another admin's) changes nothing.
    bot.api.push_callback(data=f"gm:ban:{decision.id}", message=entry, user_id=GROUP_ADMIN)
    assert (await callback_answers(bot, 4))[-1] == group_texts.LOG_ALREADY.format(answer="잘못 판정")
    await settle(bot)
    assert not bot.api.calls("banChatMember")


async def test_reports_from_enough_distinct_members_trigger_the_policy_once(
    start_bot, clean_everywhere_model_dir
):
    """The model finds the message clean; members' reports decide. Ten accounts mass-reporting one message: the
    policy's rule (three reporters: delete) fires once, and each report is an untrusted label."""
    bot = await start_bot(toxicity_model=clean_everywhere_model_dir)
    admins_and_rights(bot.api)
    await configure(bot, "/settings mode act", f"/settings log {LOG_CHAT}")
    target = say(bot, "이 가게 사장님 진짜 별로네요 다시는 안 감")
    await settle(bot)
    assert await decisions(bot) == []  # clean by the model

    own = say(bot, "/report", user_id=MEMBER, reply_to=target)
    assert (await bot.api.wait_for_reply(own))["text"] == group_texts.REPORT_OWN
    admin_message = say(bot, "관리자가 쓴 아주 긴 공지사항입니다", user_id=GROUP_ADMIN)
    against_admin = say(bot, "/report", user_id=4001, reply_to=admin_message)
    assert (await bot.api.wait_for_reply(against_admin))["text"] == group_texts.REPORT_ADMIN

    answers = []
    for reporter in range(5001, 5011):
        report = say(bot, "/report", user_id=reporter, reply_to=target)
        answers.append((await bot.api.wait_for_reply(report))["text"])
    again = say(bot, "/report", user_id=5001, reply_to=target)
    answers.append((await bot.api.wait_for_reply(again))["text"])
    await settle(bot, lambda: bool(bot.api.deleted))

    assert answers[0] == group_texts.REPORT_RECORDED.format(reporters=1, limit=3)
    assert answers[2] == group_texts.REPORT_RECORDED.format(reporters=3, limit=3)
    assert answers[-1] == group_texts.REPORT_AGAIN.format(reporters=10, limit=3)
    assert bot.api.deleted == [(GROUP, target["message_id"])]
    (decision,) = await decisions(bot)
    assert decision.rule.startswith(group_texts.RULE_REPORTS.format(reporters=3, limit=3))
    assert [(a.kind, a.status) for a in await actions(bot)] == [(ActionKind.DELETE, ActionStatus.DONE)]
    await settle(bot, lambda: bool(bot.api.sent(chat_id=LOG_CHAT)))
    log = bot.api.sent(chat_id=LOG_CHAT)
    assert len(log) == 1 and "신고 3명" in log[0]["text"]
    toxicity = await verdict_for(bot, target, Task.TOXICITY)
    async with bot.session() as session:
        labels = (await session.scalars(select(Feedback).order_by(Feedback.user_id))).all()
    assert [(f.user_id, f.verdict_id, f.label, f.trusted) for f in labels] == [
        (reporter, toxicity.id, 1, False) for reporter in range(5001, 5011)
    ]


async def test_joining_a_group_greets_once_and_starts_in_watch(start_bot):
    bot = await start_bot()
    bot.api.push_my_chat_member(GROUP, old_status="left", new_status="member", from_user_id=GROUP_ADMIN)
    await settle(bot, lambda: bool(bot.api.sent(chat_id=GROUP)))
    # Promoted to admin afterwards: it was in the group already, so no second greeting.
    bot.api.push_my_chat_member(
        GROUP,
        old_status="member",
        new_status="administrator",
        from_user_id=GROUP_ADMIN,
        can_delete_messages=True,
    )
    await settle(bot)
    assert [m["text"] for m in bot.api.sent(chat_id=GROUP)] == [group_texts.JOINED]
    assert (await bot.moderation.group_policy(GROUP)).mode is ChatMode.WATCH


async def test_a_chats_decisions_follow_the_order_its_messages_arrived():
    from bot.moderation.group_watching import ArrivalOrder

    order, decided = ArrivalOrder(), []
    tickets = [order.take() for _ in range(4)]

    async def decide(ticket: int, delay: float) -> None:
        await asyncio.sleep(delay)  # classification finishing out of order
        await order.turn(ticket)
        decided.append(ticket)
        order.finish(ticket)

    await asyncio.wait_for(
        asyncio.gather(*(decide(t, d) for t, d in zip(tickets, (0.03, 0.0, 0.02, 0.01), strict=True))), 5
    )
    assert decided == [0, 1, 2, 3]
    order.finish(1)  # finishing twice changes nothing
    late = order.take()
    await asyncio.wait_for(order.turn(late), 1)  # nothing earlier is left: its turn is now


async def test_a_ban_after_k_strikes_and_the_log_chats_ban_button_each_ban_once(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    await configure(
        bot, "/settings mode act", f"/settings log {LOG_CHAT}", "/settings mute 0", "/settings ban 2"
    )
    say(bot, TOXIC)
    say(bot, TOXIC + "!!")
    await settle(bot, lambda: bool(bot.api.calls("banChatMember")))
    assert bot.api.member_status(GROUP, MEMBER) == "kicked"
    assert [(d.strikes, [a.kind for a in d.actions]) for d in await decisions(bot)] == [
        (1, [ActionKind.DELETE]),
        (2, [ActionKind.DELETE, ActionKind.BAN]),
    ]

    # Another member's toxic message; the admin escalates it from the log chat with 추방.
    other = 3010
    message = say(bot, TOXIC, user_id=other)
    await settle(bot, lambda: len(bot.api.sent(chat_id=LOG_CHAT)) >= 3)
    entry = bot.api.sent(chat_id=LOG_CHAT)[-1]
    decision = (await decisions(bot))[-1]
    bot.api.push_callback(data=f"gm:ban:{decision.id}", message=entry, user_id=GROUP_ADMIN)
    bot.api.push_callback(data=f"gm:ban:{decision.id}", message=entry, user_id=GROUP_ADMIN)  # a double tap
    answers = await callback_answers(bot, 2)
    await settle(bot, lambda: len(bot.api.calls("banChatMember")) >= 2)
    assert sorted(answers) == sorted([group_texts.LOG_BANNED, group_texts.LOG_ALREADY.format(answer="추방")])
    assert bot.api.member_status(GROUP, other) == "kicked"
    assert len(bot.api.calls("banChatMember")) == 2  # one per member
    toxicity = await verdict_for(bot, message, Task.TOXICITY)
    async with bot.session() as session:
        labels = (await session.scalars(select(Feedback).where(Feedback.verdict_id == toxicity.id))).all()
    assert [(f.user_id, f.label, f.trusted) for f in labels] == [(GROUP_ADMIN, toxicity.label, True)]


async def test_a_flood_reaches_the_log_chat_in_digests_each_entry_once_and_its_buttons_work(
    start_bot, toxic_everywhere_model_dir
):
    from bot.storage import OutboxMessage, OutboxStatus
    from bot.telegram.digest import DIGEST_HEADER

    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    admins_and_rights(bot.api)
    await configure(bot, f"/settings log {LOG_CHAT}")
    flood = 30
    for number in range(flood):
        say(bot, f"{TOXIC} {number}", user_id=MEMBER + number)

    def logged_ids() -> list[int]:
        return [int(data.split(":")[2]) for m in bot.api.sent(chat_id=LOG_CHAT) for data in buttons(m)[::3]]

    await settle(bot, lambda: len(logged_ids()) >= flood, timeout=60)
    rows = await decisions(bot)
    log = bot.api.sent(chat_id=LOG_CHAT)
    # Every decision logged exactly once, in the order decided, in fewer messages than entries.
    assert logged_ids() == [d.id for d in rows] and len(rows) == flood
    assert len(log) < flood
    digest = next(m for m in log if m["text"].startswith(DIGEST_HEADER.split("{")[0]))
    assert f"{TOXIC} " in digest["text"] and "[2] " in digest["text"]
    async with bot.session() as session:
        entries = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == LOG_CHAT))
        ).all()
    assert {e.status for e in entries} == {OutboxStatus.SENT} and len(entries) == flood
    assert {e.sent_message_id for e in entries} == {m["message_id"] for m in log}

    # A button in a digest answers for its own entry, for the group's admins only.
    second = digest["reply_markup"]["inline_keyboard"][1][1]
    assert second["text"].startswith("2 ")
    bot.api.push_callback(data=second["callback_data"], message=digest, user_id=MEMBER)
    assert (await callback_answers(bot, 1))[-1] == group_texts.LOG_NOT_ADMIN
    bot.api.push_callback(data=second["callback_data"], message=digest, user_id=GROUP_ADMIN)
    assert (await callback_answers(bot, 2))[-1] == group_texts.LOG_CONFIRMED
    answered = [d for d in await decisions(bot) if d.admin_decision is not None]
    assert [d.id for d in answered] == [int(second["callback_data"].split(":")[2])]


async def test_a_digest_telegram_fails_to_take_stays_pending_and_goes_out_once_later(start_bot):
    from datetime import timedelta

    from bot import storage
    from bot.storage import OutboxMessage, OutboxStatus
    from bot.storage.models import utcnow
    from bot.telegram.digest import DIGEST_HEADER

    bot = await start_bot(telegram_send_attempts=2)
    bot.api.inject("sendMessage", Fault.SERVER_ERROR, Fault.SERVER_ERROR)  # every attempt of the first send
    # Ten log entries due at once, as a flood leaves them (stored with their decisions, sent by the flusher).
    async with bot.session() as session:
        for number in range(10):
            row = await storage.enqueue_message(
                session,
                bot_id=int(TOKEN.split(":")[0]),  # the bot under test (its token says its id)
                chat_id=LOG_CHAT,
                text=f"기록 {number}",
                reply_markup={"inline_keyboard": [[{"text": "맞아요", "callback_data": f"gm:ok:{number}"}]]},
                digest=True,
            )
            row.created_at = utcnow() - timedelta(seconds=10)
    await settle(bot, lambda: len(bot.api.sent(chat_id=LOG_CHAT)) >= 1, timeout=30)

    attempts = bot.api.calls("sendMessage", ok_only=False)
    assert [r.fault for r in attempts] == [Fault.SERVER_ERROR, Fault.SERVER_ERROR, None]
    assert all(r.params["text"].startswith(DIGEST_HEADER.format(count=10)) for r in attempts)
    (digest,) = bot.api.sent(chat_id=LOG_CHAT)
    assert [b["callback_data"] for row in digest["reply_markup"]["inline_keyboard"] for b in row] == [
        f"gm:ok:{number}" for number in range(10)
    ]
    async with bot.session() as session:
        rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == LOG_CHAT))).all()
    assert {(r.status, r.sent_message_id, r.attempts) for r in rows} == {
        (OutboxStatus.SENT, digest["message_id"], 2)
    }
