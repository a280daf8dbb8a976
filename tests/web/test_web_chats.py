"""The chat pages over real HTTP to uvicorn: a group's Telegram admins get a link and see only their groups (asked
again at every request), edit the policy through the /settings use case, and answer the action log through the
log chat's use case (되돌리기 clears the strike, records the trusted label, queues the unmute)."""

from __future__ import annotations

from html import unescape

import pytest
from sqlalchemy import select
from web_helpers import (
    ADMIN,
    GROUP,
    GROUP_ADMIN,
    OTHER_GROUP,
    OTHER_GROUP_ADMIN,
    REVIEWER,
    STRANGER,
    FakeChatAdmins,
    csrf_of,
)

from bot import storage
from bot.moderation import Actor, BotRights, group_texts, texts
from bot.storage import ActionKind, ActionStatus, ChatMode, FeedbackSource, Task
from bot.storage.models import Feedback, ModerationAction
from bot.web import texts as web_texts

pytestmark = pytest.mark.timeout(600)  # the first test to start the app may train the session's scratch model

TOXIC_TEXT = "이 바보 같은 놈아 꺼져"


def group_admins() -> FakeChatAdmins:
    return FakeChatAdmins(
        {GROUP: {GROUP_ADMIN}, OTHER_GROUP: {OTHER_GROUP_ADMIN}},
        rights=BotRights(can_delete_messages=True, can_restrict_members=False, reads_all_messages=True),
    )


async def add_decision(web, record_strike, *, chat_id: int, message_id: int, muted: bool = True) -> int:
    """A toxic message's decision as the group policy records it: a strike, a deletion and (done) a mute."""
    async with web.session() as session:
        verdict = await storage.add_verdict(
            session,
            chat_id=chat_id,
            message_id=message_id,
            user_id=77,
            text=TOXIC_TEXT,
            label=1,
            label_name="공격적",
            confidence=0.93,
            probabilities={"정상": 0.05, "공격적": 0.93, "혐오": 0.02},
            model_version_id=None,
            task=Task.TOXICITY,
        )
        planned = [storage.PlannedAction(ActionKind.DELETE)]
        if muted:
            planned.append(storage.PlannedAction(ActionKind.MUTE))
        decision = await record_strike(
            session,
            chat_id=chat_id,
            message_id=message_id,
            verdict_id=verdict.id,
            actions=planned,
            toxic_probability=0.93,
            threshold=0.9,
            rule="유해 확률이 기준 이상",
            strikes=3,
        )
        for action in decision.actions:
            await storage.finish_action(session, action_id=action.id, status=ActionStatus.DONE)
        return decision.id


async def two_groups(web, record_strike) -> tuple[int, int]:
    async with web.session() as session:
        await storage.update_chat_policy(session, chat_id=GROUP, updated_by=ADMIN, mode=ChatMode.ACT)
    mine = await add_decision(web, record_strike, chat_id=GROUP, message_id=10)
    return mine, await add_decision(web, record_strike, chat_id=OTHER_GROUP, message_id=20)


async def test_a_group_admin_gets_a_link_and_sees_only_their_groups(start_web, record_strike):
    admins = group_admins()
    web = await start_web(chat_admins=admins)
    mine, theirs = await two_groups(web, record_strike)
    stranger = await web.moderation.web_login_link(
        actor=Actor(user_id=STRANGER, is_admin=False), admins=admins
    )
    assert stranger.text == texts.WEB_ONLY
    async with web.client(GROUP_ADMIN) as client:
        home = await client.get("/")
        assert "그룹 관리자" in home.text and f'href="/chats/{GROUP}"' in home.text
        assert f'href="/chats/{OTHER_GROUP}"' not in home.text and "<svg" not in home.text
        listing = await client.get("/chats")
        assert f'href="/chats/{GROUP}"' in listing.text and f"/chats/{OTHER_GROUP}" not in listing.text
        page = await client.get(f"/chats/{GROUP}")
        assert page.status_code == 200
        assert TOXIC_TEXT in page.text and "93% / 90%" in page.text and "유해 확률이 기준 이상" in page.text
        assert "mute (done)" in page.text and f'id="undo-{mine}"' in page.text
        assert "메시지 삭제: 예 · 사용자 제한: 아니요" in page.text  # the bot's rights, as the adapter says
        asked = admins.asked.count((GROUP, GROUP_ADMIN))
        await client.get(f"/chats/{GROUP}")
        assert admins.asked.count((GROUP, GROUP_ADMIN)) == asked + 1  # asked again at every request
        # Another group's pages and changes: 403, nothing changes.
        refused = await client.get(f"/chats/{OTHER_GROUP}")
        assert refused.status_code == 403 and web_texts.NOT_YOUR_CHAT in refused.text
        token = csrf_of(page.text)
        for path, data in (
            (f"/chats/{OTHER_GROUP}/settings", {"key": "mode", "value": "off"}),
            (f"/chats/{OTHER_GROUP}/decisions/{theirs}/undo", {}),
        ):
            assert (await client.post(path, data={"csrf_token": token, **data})).status_code == 403, path
        # Their own group's URL with the other group's decision: not found, not answered.
        crossed = await client.post(f"/chats/{GROUP}/decisions/{theirs}/undo", data={"csrf_token": token})
        assert crossed.status_code == 404
        # Not the admin pages nor the queue.
        for path in ("/runs", "/users", "/models", "/queue"):
            assert (await client.get(path)).status_code == 403, path
        assert (await client.get("/?days=7")).status_code == 200  # home, not the overview
        # Telegram says they are no admin any more: refused at once, same session.
        admins.admins[GROUP] = set()
        assert (await client.get(f"/chats/{GROUP}")).status_code == 403
    async with web.session() as session:
        other = await storage.get_decision(session, decision_id=theirs)
        assert other.admin_decision is None and other.strike
        assert (await storage.get_chat_policy(session, chat_id=OTHER_GROUP)).mode is ChatMode.WATCH


async def test_policy_edits_use_the_settings_rules_and_messages(start_web, record_strike):
    admins = group_admins()
    web = await start_web(chat_admins=admins)
    await two_groups(web, record_strike)
    async with web.client(GROUP_ADMIN) as client:
        page = await client.get(f"/chats/{GROUP}")
        token = csrf_of(page.text)
        done = await client.post(
            f"/chats/{GROUP}/settings", data={"csrf_token": token, "key": "threshold", "value": "80"}
        )
        assert done.status_code == 303 and done.headers["location"] == f"/chats/{GROUP}"
        shown = await client.get(f"/chats/{GROUP}")
        assert "✅ 바꿨어요." in shown.text and 'id="policy-threshold">80%<' in shown.text
        async with web.session() as session:
            policy = await storage.get_chat_policy(session, chat_id=GROUP)
        assert policy.toxicity_threshold == pytest.approx(0.8) and policy.updated_by == GROUP_ADMIN
        for key, value in (("threshold", "30"), ("mute", "many"), ("log", str(OTHER_GROUP))):
            expected = await web.moderation.group_settings(
                chat_id=GROUP,
                user_id=GROUP_ADMIN,
                argument=f"{key} {value}",
                admins=admins,
                rights=BotRights(True, False, True),
            )
            await client.post(
                f"/chats/{GROUP}/settings", data={"csrf_token": token, "key": key, "value": value}
            )
            flash = (await client.get(f"/chats/{GROUP}")).text
            assert expected.text in unescape(flash), (key, expected.text)
        assert group_texts.SETTINGS_LOG_NOT_ADMIN.format(chat_id=OTHER_GROUP) == expected.text
        async with web.session() as session:
            policy = await storage.get_chat_policy(session, chat_id=GROUP)
        assert policy.toxicity_threshold == pytest.approx(0.8) and policy.log_chat_id is None  # unchanged
        assert (
            await client.post(
                f"/chats/{GROUP}/settings", data={"csrf_token": token, "key": "colour", "value": "red"}
            )
        ).status_code == 400


async def test_undo_and_ok_go_through_the_log_buttons_use_case(start_web, record_strike):
    web = await start_web(chat_admins=group_admins())
    mine, _ = await two_groups(web, record_strike)
    second = await add_decision(web, record_strike, chat_id=GROUP, message_id=11, muted=False)
    async with web.client(GROUP_ADMIN) as client:
        page = await client.get(f"/chats/{GROUP}")
        token = csrf_of(page.text)
        undone = await client.post(f"/chats/{GROUP}/decisions/{mine}/undo", data={"csrf_token": token})
        assert undone.status_code == 303
        assert group_texts.LOG_UNDONE in unescape((await client.get(f"/chats/{GROUP}")).text)
        again = await client.post(f"/chats/{GROUP}/decisions/{mine}/ok", data={"csrf_token": token})
        assert again.status_code == 303
        assert (
            group_texts.LOG_ALREADY.format(answer="잘못 판정") in (await client.get(f"/chats/{GROUP}")).text
        )
        await client.post(f"/chats/{GROUP}/decisions/{second}/ok", data={"csrf_token": token})
        assert group_texts.LOG_CONFIRMED in (await client.get(f"/chats/{GROUP}")).text
        assert (
            await client.post(f"/chats/{GROUP}/decisions/{second}/ban", data={"csrf_token": token})
        ).status_code == 404  # the web offers 되돌리기 and 맞아요 only
    async with web.session() as session:
        decision = await storage.get_decision(session, decision_id=mine)
        assert (decision.admin_decision, decision.admin_id, decision.strike) == ("wrong", GROUP_ADMIN, False)
        unmute = await session.scalar(
            select(ModerationAction).where(
                ModerationAction.decision_id == mine, ModerationAction.kind == ActionKind.UNMUTE
            )
        )
        assert unmute is not None and unmute.status is ActionStatus.PENDING  # the bot's action runner does it
        labels = {
            f.verdict_id: f
            for f in await session.scalars(select(Feedback).where(Feedback.user_id == GROUP_ADMIN))
        }
        assert labels[decision.verdict_id].label == 0 and labels[decision.verdict_id].trusted  # 정상
        assert labels[decision.verdict_id].source is FeedbackSource.BUTTON
        confirmed = await storage.get_decision(session, decision_id=second)
        assert confirmed.admin_decision == "right" and labels[confirmed.verdict_id].label == 1


async def test_bot_admins_see_every_group_and_without_telegram_only_they_do(start_web, record_strike):
    web = await start_web()  # no ChatAdmins: `moderator web` without a bot token
    await two_groups(web, record_strike)
    link = await web.moderation.web_login_link(actor=Actor(user_id=GROUP_ADMIN, is_admin=False))
    assert link.text == texts.WEB_ONLY
    async with web.client(ADMIN) as admin:
        listing = await admin.get("/chats")
        assert f'href="/chats/{GROUP}"' in listing.text and f'href="/chats/{OTHER_GROUP}"' in listing.text
        page = await admin.get(f"/chats/{OTHER_GROUP}")
        assert page.status_code == 200 and "알 수 없어요" in page.text  # no adapter: rights unknown
        assert (await admin.get("/chats/-999")).status_code == 404  # not a known group
        assert (await admin.get("/chats/abc")).status_code == 404
    async with web.client(REVIEWER) as reviewer:
        assert (await reviewer.get("/chats")).status_code == 200  # an empty list: no groups of theirs
        assert (await reviewer.get(f"/chats/{GROUP}")).status_code == 403


async def test_moderator_web_without_a_token_asks_nobody_about_groups(tmp_path):
    from web_helpers import web_settings

    from bot.web.cli import _telegram_chat_admins

    settings = web_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path, telegram_bot_token=None)
    assert await _telegram_chat_admins(settings) == (None, None)
