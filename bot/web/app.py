"""`create_app`: the web app around a running `Moderation` (the bot's, or `moderator web`'s own)."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response

from bot import metrics
from bot.moderation import ChatAdmins, Moderation
from bot.moderation import texts as bot_texts
from bot.settings import Settings
from bot.storage import InvalidDataError, StorageError
from bot.web import ops, texts
from bot.web.auth import LoginThrottle, safe_path
from bot.web.pages import chats, login, models, queue, runs, users
from bot.web.rendering import error_page

logger = logging.getLogger("bot.web")

SESSION_COOKIE = "moderator_session"
SESSION_MAX_AGE_S = 12 * 3600


def session_secret(settings: Settings) -> str:
    if settings.web_session_secret is not None and settings.web_session_secret.get_secret_value():
        return settings.web_session_secret.get_secret_value()
    logger.warning(
        "WEB_SESSION_SECRET is not set: using a random one for this process, so web sessions end at every restart"
    )
    return secrets.token_urlsafe(32)


def create_app(
    settings: Settings,
    moderation: Moderation,
    *,
    login_throttle: LoginThrottle | None = None,
    chat_admins: ChatAdmins | None = None,
) -> Starlette:
    """`chat_admins` says who administers a Telegram group (the bot's TelegramChatAdmins); without it only bot
    admins use the chat pages and no group admin can log in."""
    app = Starlette(
        routes=[
            *login.ROUTES,
            *queue.ROUTES,
            *models.ROUTES,
            *runs.ROUTES,
            *chats.ROUTES,
            *users.ROUTES,
            *ops.ROUTES,
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=session_secret(settings),
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_MAX_AGE_S,
                path="/",
                same_site="lax",
                https_only=settings.web_public_url.startswith("https://"),
            )
        ],
        exception_handlers={
            HTTPException: _http_error,
            InvalidDataError: _invalid_data,
            StorageError: _storage_error,
            SQLAlchemyError: _storage_error,
            Exception: _server_error,
        },
    )
    app.state.settings = settings
    app.state.moderation = moderation
    app.state.chat_admins = chat_admins
    app.state.session_factory = moderation.session_factory
    app.state.login_throttle = login_throttle or LoginThrottle()
    app.state.basic_auth_cache = {}
    app.state.scrape_snapshot = metrics.ScrapeSnapshot()
    app.state.metrics_registry = metrics.scrape_registry(app.state.scrape_snapshot)
    return app


_MESSAGES = {400: texts.BAD_REQUEST, 404: texts.NOT_FOUND, 405: texts.BAD_REQUEST}


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = (
        error.detail if error.status_code in (401, 403, 429) or error.status_code not in _MESSAGES else None
    )
    return error_page(request, error.status_code, message or _MESSAGES[error.status_code])


async def _invalid_data(request: Request, error: Exception) -> Response:
    return error_page(request, 409, bot_texts.INVALID_DATA.format(detail=error))


async def _storage_error(request: Request, error: Exception) -> Response:
    logger.error("web %s: storage failed (%s)", safe_path(request), type(error).__name__)
    return error_page(request, 503, bot_texts.STORAGE_ERROR)


async def _server_error(request: Request, error: Exception) -> Response:
    logger.error("web %s failed: %s", safe_path(request), type(error).__name__, exc_info=error)
    return error_page(request, 500, texts.SERVER_ERROR)
