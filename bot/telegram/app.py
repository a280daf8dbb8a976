"""Builds the python-telegram-bot `Application` around a `Moderation` service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from telegram import BotCommand
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, Defaults

from bot import metrics
from bot.moderation import Moderation
from bot.settings import Settings
from bot.telegram import handlers
from bot.telegram.actions import ActionWorker
from bot.telegram.groups import TelegramChatAdmins
from bot.telegram.limits import clip_request
from bot.telegram.redaction import install_token_redaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.5
# Telegram's 20-a-minute limit in a group is on the messages a bot sends there. Moderating a group (deleting a
# message, restricting or banning a member, asking who administers it) is only under the overall limit, so these
# calls skip the per-group limiter: a flood of toxic messages is handled in seconds, not at 20 a minute.
NOT_GROUP_MESSAGES = frozenset(
    {
        "deleteMessage",
        "restrictChatMember",
        "banChatMember",
        "unbanChatMember",
        "getChatMember",
        "getChatAdministrators",
    }
)

BOT_COMMANDS = (
    BotCommand("predict", "리뷰의 분류별 확률 보기"),
    BotCommand("feedback", "판정 정정·확인 (wrong, right 또는 분류 이름)"),
    BotCommand("review", "애매한 판정 검토하기 (검토자)"),
    BotCommand("web", "관리 화면 로그인 링크 받기 (관리자·검토자)"),
    BotCommand("stats", "통계"),
    BotCommand("model", "사용 중인 모델"),
    BotCommand("settings", "그룹 관리 규칙 보기·바꾸기 (그룹에서)"),
    BotCommand("help", "도움말"),
)


class RetryingRateLimiter(AIORateLimiter):
    """Telegram's flood limits (AIORateLimiter, which retries 429 RetryAfter) plus bounded retries with
    exponential backoff on 5xx answers and network errors, timeouts included.

    Bad requests (4xx) are not retried: sending them again cannot help. A timed-out send may have reached
    Telegram, so a retry can rarely duplicate a message; losing the answer would be worse.

    Every request but getUpdates passes through here, so this is also where texts are clipped to Telegram's
    limits (bot.telegram.limits).
    """

    def __init__(self, *, attempts: int, first_backoff_s: float = FIRST_BACKOFF_SECONDS) -> None:
        super().__init__(max_retries=attempts - 1)
        self._attempts = attempts
        self._first_backoff_s = first_backoff_s

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        clip_request(endpoint, data)  # every text that goes out fits Telegram's limits
        # What the limiter reads to pick its limits (the request itself is in `args`).
        limited_as = (
            {k: v for k, v in data.items() if k != "chat_id"} if endpoint in NOT_GROUP_MESSAGES else data
        )
        for attempt in range(1, self._attempts + 1):
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, limited_as, rate_limit_args
                )
            except BadRequest as exc:
                metrics.record_telegram_error(method=endpoint, error=type(exc).__name__)
                raise
            except NetworkError as exc:  # 5xx, connection trouble, TimedOut
                metrics.record_telegram_error(method=endpoint, error=type(exc).__name__)
                if attempt == self._attempts:
                    raise
                delay = self._first_backoff_s * 2 ** (attempt - 1)
                logger.warning(
                    "%s failed (%s: %s); attempt %d of %d, retrying in %.1f s",
                    endpoint,
                    type(exc).__name__,
                    exc,
                    attempt,
                    self._attempts,
                    delay,
                )
                await asyncio.sleep(delay)
            except TelegramError as exc:  # 403, 401, RetryAfter beyond the limiter's retries, ...
                metrics.record_telegram_error(method=endpoint, error=type(exc).__name__)
                raise
        raise AssertionError("unreachable")


def build_application(
    settings: Settings, *, moderation: Moderation, engine: AsyncEngine | None = None
) -> Application:
    """The bot, without PTB's Updater: `bot.telegram.runner.BotRunner` fetches updates (long polling or a
    webhook) into the database inbox and feeds them to `Application.process_update`.

    `post_init` publishes the command list; `post_shutdown` stops the micro-batcher and disposes `engine`.
    The retraining service, when there is one, is `moderation.retrainer`.
    """
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    token = settings.telegram_bot_token.get_secret_value()
    install_token_redaction(token)
    timeout = settings.telegram_timeout_seconds

    async def post_init(application: Application) -> None:
        await application.bot.set_my_commands(list(BOT_COMMANDS))

    async def post_shutdown(application: Application) -> None:
        await moderation.aclose_serving()
        if engine is not None:
            await engine.dispose()

    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .defaults(Defaults(do_quote=True))  # every answer is a reply to the message it answers
        .rate_limiter(RetryingRateLimiter(attempts=settings.telegram_send_attempts))
        .updater(None)  # updates come from the inbox (bot.telegram.runner), not from PTB's Updater
        .concurrent_updates(True)  # the runner bounds concurrency through application.update_processor
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .write_timeout(timeout)
        .pool_timeout(timeout)
        .get_updates_connect_timeout(timeout)
        .get_updates_read_timeout(timeout)  # the long-polling timeout is added to it per request
        .get_updates_write_timeout(timeout)
        .get_updates_pool_timeout(timeout)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    application.bot_data["moderation"] = moderation
    application.bot_data["chat_admins"] = TelegramChatAdmins(application.bot)
    application.bot_data["actions"] = ActionWorker(application.bot, moderation.session_factory)
    handlers.register(application)
    return application
