"""`/web`: a one-time link into the operator web app (bot/web), for admins, reviewers and the Telegram admins of
groups the moderator knows (a policy or decisions), in a private chat only. Who administers a group is asked of
Telegram through `ChatAdmins` (the adapter's getChatMember check, cached briefly); the web app asks again at every
request to a chat's pages.

The token (`secrets.token_urlsafe(32)`) goes out in the link and is stored only as its SHA-256 hash
(`bot.storage.web_logins`); the link works once, for `LOGIN_LINK_MINUTES`.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from bot import storage
from bot.moderation import texts
from bot.moderation.context import UseCaseContext
from bot.moderation.group_watching import ChatAdmins
from bot.moderation.replies import Actor, Reply, friendly_errors

logger = logging.getLogger("bot.moderation")

LOGIN_LINK_MINUTES = 10


class WebAccess(UseCaseContext):
    async def administered_groups(self, *, user_id: int | None, admins: ChatAdmins | None) -> list[int]:
        """The known groups (a policy or decisions) this user may administer: every one for a bot admin; those
        whose Telegram admin they are, as `admins` says, for anyone else (none without `admins`)."""
        if user_id is None:
            return []
        async with self._transaction() as session:
            groups = await storage.known_group_ids(session)
        if self.settings.is_admin(user_id):
            return groups
        if admins is None:
            return []
        return [chat_id for chat_id in groups if await admins.is_admin(chat_id, user_id)]

    @friendly_errors
    async def web_login_link(
        self, *, actor: Actor, private: bool = True, admins: ChatAdmins | None = None
    ) -> Reply:
        staff = actor.is_admin or self.settings.is_reviewer(actor.user_id)
        if actor.user_id is None or not (
            staff or await self.administered_groups(user_id=actor.user_id, admins=admins)
        ):
            logger.warning(
                "user %s (no admin, reviewer or group admin) asked for a web login link", actor.user_id
            )
            return Reply(texts.WEB_ONLY)
        if not private:  # the link logs in whoever opens it: never where others can read it
            return Reply(texts.WEB_PRIVATE_ONLY)
        if self.settings.web_port is None and self.settings.web_base_url is None:
            return Reply(texts.WEB_OFF)  # neither served beside this bot nor by `moderator web` elsewhere
        token = secrets.token_urlsafe(32)
        async with self._transaction() as session:
            await storage.add_web_login(
                session, token=token, user_id=actor.user_id, valid_for=timedelta(minutes=LOGIN_LINK_MINUTES)
            )
        logger.info("web login link issued to user %s", actor.user_id)  # never the token
        url = f"{self.settings.web_public_url}/login/{token}"
        # The outbox keeps a reply until retention purges it; once sent, it keeps this link-free text instead.
        return Reply(
            texts.WEB_LINK.format(minutes=LOGIN_LINK_MINUTES, url=url),
            text_after_send=texts.WEB_LINK_SENT.format(minutes=LOGIN_LINK_MINUTES),
        )
