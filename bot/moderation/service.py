"""`Moderation`: the bot's use cases behind one object, free of Telegram. Each takes plain data and returns a
`Reply` (Korean text + buttons); the Telegram handlers (`bot.telegram.handlers`) and the terminal mode
(`bot.telegram.chat`) both call it. Every use case opens its own short transaction; a verdict is committed
before its reply is sent, so it survives a failed send.
"""

from __future__ import annotations

import logging

from bot.moderation import texts
from bot.moderation.administration import Administration
from bot.moderation.group_admin import GroupAdministration
from bot.moderation.group_reports import GroupReporting
from bot.moderation.replies import Actor, Reply, friendly_errors
from bot.moderation.reviewing import Reviewing
from bot.moderation.web_access import WebAccess

logger = logging.getLogger("bot.moderation")


class Moderation(GroupAdministration, GroupReporting, Reviewing, Administration, WebAccess):
    @friendly_errors
    async def button(self, *, actor: Actor, chat_id: int, data: str, private: bool = True) -> Reply:
        """A press of an inline button: a verdict's (`ok`, `wrong`, `label`) or a review item's (`rv`)."""
        action, _, rest = data.partition(":")
        if action == "rv":
            return await self.review_button(actor=actor, rest=rest, private=private)
        if action in {"ok", "wrong", "label"}:
            return await self.label_button(actor=actor, action=action, rest=rest, chat_id=chat_id)
        return Reply(texts.FEEDBACK_NO_VERDICT)

    def warn_about_settings(self) -> None:
        """Once at start-up: say when untrusted labels can never count."""
        if not self.label_rule.trust_everyone and not self.anyone_can_check:
            logger.warning(
                "neither ADMIN_IDS nor REVIEWER_IDS is set: nobody can answer the review queue, so labels of "
                "users other than admins will never count for retraining (set one of them, or TRUST_FEEDBACK=true)"
            )
