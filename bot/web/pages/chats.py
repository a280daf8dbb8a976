"""The chat pages: `/chats` lists the groups you may open; `/chats/{id}` shows a group's policy (edited through
the same use case and rules as `/settings`), the bot's rights there, and the action log, whose 되돌리기 / 맞아요
buttons go through the same use case as the log chat's buttons (`Moderation.log_button`): 되돌리기 clears the
strike, records the trusted 정상 label and queues the unmute/unban actions the bot executes (its action runner).

Every request re-checks that you administer the group (`bot.web.chat_access.require_chat`)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import storage
from bot.moderation import BotRights, group_texts, parse_id
from bot.storage import ChatMode
from bot.web import texts
from bot.web.auth import checked_form, require
from bot.web.chat_access import bot_rights, chat_admins, require_chat, visible_groups
from bot.web.rendering import render

DECISIONS_SHOWN = 100
# The /settings keys the form offers, with what to type (the value is parsed exactly as after `/settings key`).
SETTING_KEYS = {
    "mode": "모드: off / watch / act (끔 / 지켜보기 / 조치)",
    "threshold": "기준: 50~99 (%)",
    "action": "조치: delete / warn (삭제 / 경고)",
    "mute": "제한: 경고 횟수 [분] (0: 안 함)",
    "ban": "추방: 경고 횟수 (0: 안 함)",
    "window": "기간: 시간",
    "sentiment": "감성 답장: on / off",
    "reports": "신고: 인원 (0: 안 함)",
    "log": "기록 채팅: 채팅 ID / here / off",
}
ANSWERS = {"undo": "되돌리기", "ok": "맞아요"}
UNKNOWN_RIGHTS = BotRights(False, False, False)


def _chat_id(request: Request) -> int:
    """The path's chat id (groups' ids are negative, which Starlette's `int` convertor does not take)."""
    raw = str(request.path_params["chat_id"])
    if not raw.lstrip("-").isdecimal() or len(raw) > 20:
        raise HTTPException(404, texts.NOT_FOUND)
    return int(raw)


async def chats_page(request: Request) -> Response:
    user = require(request, group_admin=True)
    groups = await visible_groups(request, user)
    policies = {}
    async with request.app.state.session_factory() as session:
        for chat_id in groups:
            policies[chat_id] = await storage.get_chat_policy(session, chat_id=chat_id)
    return render(
        request, "chats.html", {"groups": groups, "policies": policies, "modes": group_texts.MODE_NAMES}
    )


async def chat_page(request: Request) -> Response:
    chat_id = _chat_id(request)
    await require_chat(request, chat_id)
    async with request.app.state.session_factory() as session:
        policy = await storage.get_chat_policy(session, chat_id=chat_id)
        decisions = await storage.chat_decisions(session, chat_id=chat_id, limit=DECISIONS_SHOWN)
    rights = await bot_rights(request, chat_id)
    return render(
        request,
        "chat.html",
        {
            "chat_id": chat_id,
            "policy": policy,
            "mode": group_texts.MODE_NAMES[ChatMode(policy.mode)],
            "action": group_texts.TOXIC_ACTION_NAMES[policy.action],
            "rights": rights,
            "decisions": decisions,
            "answers": group_texts.ADMIN_ANSWERS,
            "keys": SETTING_KEYS,
        },
    )


async def change_policy(request: Request) -> Response:
    chat_id = _chat_id(request)
    user = await require_chat(request, chat_id)
    form = await checked_form(request)
    key = str(form.get("key") or "")
    value = str(form.get("value") or "").strip()
    if key not in SETTING_KEYS:
        raise HTTPException(400, texts.BAD_REQUEST)
    reply = await request.app.state.moderation.group_settings(
        chat_id=chat_id,
        user_id=user.user_id,
        argument=f"{key} {value}",
        admins=chat_admins(request),
        rights=await bot_rights(request, chat_id) or UNKNOWN_RIGHTS,
    )
    request.session["flash"] = reply.text
    return RedirectResponse(f"/chats/{chat_id}", status_code=303)


async def answer_decision(request: Request) -> Response:
    chat_id = _chat_id(request)
    user = await require_chat(request, chat_id)
    await checked_form(request)
    answer = request.path_params["answer"]
    decision_id = parse_id(str(request.path_params["decision_id"]))
    if answer not in ANSWERS or decision_id is None:
        raise HTTPException(404, texts.NOT_FOUND)
    async with request.app.state.session_factory() as session:
        decision = await storage.get_decision(session, decision_id=decision_id)
    if (
        decision is None or decision.chat_id != chat_id
    ):  # another chat's decision: not through this chat's page
        raise HTTPException(404, texts.NOT_FOUND)
    outcome = await request.app.state.moderation.log_button(
        user_id=user.user_id, rest=f"{answer}:{decision_id}", admins=chat_admins(request)
    )
    request.session["flash"] = outcome.reply.text if outcome.reply is not None else group_texts.LOG_UNKNOWN
    return RedirectResponse(f"/chats/{chat_id}", status_code=303)


ROUTES = [
    Route("/chats", chats_page, methods=["GET"]),
    Route("/chats/{chat_id}", chat_page, methods=["GET"]),
    Route("/chats/{chat_id}/settings", change_policy, methods=["POST"]),
    Route("/chats/{chat_id}/decisions/{decision_id:int}/{answer}", answer_decision, methods=["POST"]),
]
