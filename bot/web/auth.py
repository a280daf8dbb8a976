"""Who asks: login by a one-time link, the signed session cookie, roles, CSRF and the login throttle.

- `/web` in a private chat gives an admin or reviewer a link `<WEB_BASE_URL>/login/<token>`
  (`bot.moderation.web_access`). Opening it shows a button; pressing it (a POST, so that link previews and
  prefetchers cannot use the link up) exchanges the token, once, for a session cookie holding the Telegram user
  id (Starlette's SessionMiddleware: signed with itsdangerous, HttpOnly, SameSite=Lax, Path=/).
- The role is read from the settings at every request: admins (ADMIN_IDS) see everything, reviewers
  (REVIEWER_IDS) the queue only; someone removed from both loses access at once. A group's Telegram admin (in
  neither list) logs in when they administer a known group, and sees only the pages of the groups they
  administer, which ask Telegram again at every request (`bot.web.chat_access`).
- WEB_BASIC_AUTH_HASH (bcrypt) lets a headless set-up in as "admin" over HTTP basic auth: admin pages, no queue
  (answers in the queue are a Telegram user's trusted labels).
- Every POST carries the session's CSRF token in a hidden field (`checked_form`).
- Failed logins (bad links, bad basic-auth passwords) are throttled per client address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import bcrypt
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from bot.moderation import Actor
from bot.web import texts

logger = logging.getLogger("bot.web")

ADMIN = "admin"
REVIEWER = "reviewer"
GROUP_ADMIN = "group_admin"  # a group's Telegram admin: their groups' pages only
CSRF_FIELD = "csrf_token"
LOGIN_FAILURES_PER_MINUTE = 10
BASIC_USER = "admin"
_UNSET = object()


@dataclass(frozen=True)
class WebUser:
    user_id: int | None  # the Telegram user; None for basic auth
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, is_admin=self.is_admin)


def role_of(settings, user_id: int | None) -> str | None:
    if settings.is_admin(user_id):
        return ADMIN
    if settings.is_reviewer(user_id):
        return REVIEWER
    return None


class LoginThrottle:
    """At most `limit` failed logins per client address in a sliding minute; then 429 until they age out."""

    def __init__(
        self,
        limit: int = LOGIN_FAILURES_PER_MINUTE,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        cutoff = self._clock() - self.window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[client]  # forget quiet clients: memory stays bounded by active attackers
            return deque()
        return failures

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= self.limit

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(self._clock())


def client_address(request: Request) -> str:
    # uvicorn already replaced it with X-Forwarded-For's client when the proxy is trusted (FORWARDED_ALLOW_IPS).
    return request.client.host if request.client else "unknown"


def throttle_or_raise(request: Request) -> None:
    if request.app.state.login_throttle.blocked(client_address(request)):
        logger.warning("web login throttled for %s", client_address(request))
        raise HTTPException(429, texts.LOGIN_THROTTLED)


def login_failed(request: Request, why: str) -> None:
    """Count a failed login for the client and log it (never the token or password)."""
    request.app.state.login_throttle.failed(client_address(request))
    logger.warning("web login refused for %s: %s", client_address(request), why)


def current_user(request: Request) -> WebUser | None:
    """The user this request is from (session cookie, else basic auth), with their role now; None: nobody."""
    cached = getattr(request.state, "web_user", _UNSET)
    if cached is not _UNSET:
        return cached
    settings = request.app.state.settings
    user = None
    user_id = request.session.get("uid")
    if isinstance(user_id, int):
        role = role_of(settings, user_id)
        if role is None and request.session.get("group_admin") is True:
            role = GROUP_ADMIN
        user = WebUser(user_id, role) if role else None
    if user is None and settings.web_basic_auth_hash is not None:
        user = _basic_auth_user(request)
    request.state.web_user = user
    return user


def _basic_auth_user(request: Request) -> WebUser | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    cache: dict[str, bool] = request.app.state.basic_auth_cache
    key = hashlib.sha256(header.encode()).hexdigest()  # bcrypt is slow on purpose: check each header once
    if key not in cache:
        throttle_or_raise(request)
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username, password = "", ""
        expected = request.app.state.settings.web_basic_auth_hash.get_secret_value().encode()
        try:
            good = hmac.compare_digest(username, BASIC_USER) and bcrypt.checkpw(password.encode(), expected)
        except ValueError:  # not a bcrypt hash: say so once in the log, refuse
            logger.error("WEB_BASIC_AUTH_HASH is not a bcrypt hash; basic auth refused")
            good = False
        if not good:
            login_failed(request, "wrong basic-auth credentials")
            return None
        if len(cache) > 64:
            cache.clear()
        cache[key] = True
        logger.info("web basic-auth login as %s from %s", BASIC_USER, client_address(request))
    return WebUser(None, ADMIN)


def require(
    request: Request, *, admin: bool = False, telegram_user: bool = False, group_admin: bool = False
) -> WebUser:
    """The user, when they may see this page; else 401 (nobody) or 403 (not allowed). Group admins pass only
    where `group_admin` says so (the chat pages, which then check the chat)."""
    user = current_user(request)
    if user is None:
        raise HTTPException(401, texts.LOGIN_NEEDED)
    if user.role == GROUP_ADMIN and not group_admin:
        logger.warning("web user %s (group admin) was refused %s", user.user_id, safe_path(request))
        raise HTTPException(403, texts.GROUP_ADMIN_ONLY_CHATS)
    if admin and not user.is_admin:
        logger.warning("web user %s (reviewer) was refused %s", user.user_id, safe_path(request))
        raise HTTPException(403, texts.ADMIN_ONLY)
    if telegram_user and user.user_id is None:
        raise HTTPException(403, texts.NO_TELEGRAM_ID)
    return user


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def checked_form(request: Request) -> FormData:
    """The POSTed form, when it carries this session's CSRF token; else 403."""
    form = await request.form()
    given = form.get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if (
        not isinstance(given, str)
        or not isinstance(expected, str)
        or not hmac.compare_digest(given, expected)
    ):
        logger.warning(
            "web POST %s without a valid CSRF token from %s", safe_path(request), client_address(request)
        )
        raise HTTPException(403, texts.CSRF_FAILED)
    return form


def safe_path(request: Request) -> str:
    """The request's path for logs: a login link's token never reaches them."""
    path = request.url.path
    return "/login/<token>" if path.startswith("/login/") else path
