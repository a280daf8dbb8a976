"""Who may use a group's pages: bot admins (ADMIN_IDS) every known group's; a group's Telegram admins their own
groups', asked of Telegram through the `ChatAdmins` the wiring passed in (the bot's TelegramChatAdmins, cached for
60 s) at EVERY request to a chat's page and every change. Without one (`moderator web` with no bot token), only
bot admins use the chat pages."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request

from bot import storage
from bot.moderation import BotRights, ChatAdmins
from bot.web import texts
from bot.web.auth import WebUser, require, safe_path

logger = logging.getLogger("bot.web")


class NoChatAdmins:
    """No way to ask Telegram: nobody is a group's admin (bot admins still are, by ADMIN_IDS)."""

    async def is_admin(self, chat_id: int, user_id: int) -> bool:
        return False


NO_CHAT_ADMINS = NoChatAdmins()


def chat_admins(request: Request) -> ChatAdmins:
    return request.app.state.chat_admins or NO_CHAT_ADMINS


async def require_chat(request: Request, chat_id: int) -> WebUser:
    """The user, when they may see and change this chat (asked again now); else 401/403, or 404 for a chat the
    moderator does not know."""
    user = require(request, group_admin=True)
    if not user.is_admin and (
        user.user_id is None or not await chat_admins(request).is_admin(chat_id, user.user_id)
    ):
        logger.warning(
            "web user %s is no admin of chat %s: refused %s", user.user_id, chat_id, safe_path(request)
        )
        raise HTTPException(403, texts.NOT_YOUR_CHAT)
    async with request.app.state.session_factory() as session:
        known = await storage.is_known_group(session, chat_id=chat_id)
    if not known:
        raise HTTPException(404, texts.NOT_FOUND)
    return user


async def visible_groups(request: Request, user: WebUser) -> list[int]:
    """The known groups this user may open (asked of Telegram now for a group admin)."""
    if user.is_admin:
        async with request.app.state.session_factory() as session:
            return await storage.known_group_ids(session)
    return await request.app.state.moderation.administered_groups(
        user_id=user.user_id, admins=request.app.state.chat_admins
    )


async def bot_rights(request: Request, chat_id: int) -> BotRights | None:
    """What the bot may do in the chat, when the adapter can tell (None: unknown)."""
    read = getattr(request.app.state.chat_admins, "bot_rights", None)
    if read is None:
        return None
    try:
        return await read(chat_id)
    except Exception as error:  # noqa: BLE001 - unknown rights are shown as unknown
        logger.warning("could not read the bot's rights in chat %s (%s)", chat_id, type(error).__name__)
        return None
