"""The webhook's HTTP handler: check the secret header, hand the update to the runner, answer its status."""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

import tornado.web

if TYPE_CHECKING:
    from bot.telegram.runner import BotRunner

logger = logging.getLogger("bot.telegram.runner")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookHandler(tornado.web.RequestHandler):
    """POST <webhook path>: check the secret header, store the update, answer 200 only once it is stored."""

    def initialize(self, runner: BotRunner) -> None:
        self.runner = runner

    async def post(self) -> None:
        secret = self.runner.settings.webhook_secret
        if secret is not None:
            given = self.request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
                self.set_status(403)
                return
        try:
            payload = json.loads(self.request.body or b"null")
        except ValueError:
            self.set_status(400)
            return
        self.set_status(await self.runner.accept_webhook_update(payload))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:  # one line, never a traceback
        logger.warning("webhook request failed: %s", typ.__name__ if typ else "?")
