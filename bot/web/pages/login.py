"""The start page, login by a one-time link (GET shows a button, POST uses the link) and logout."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import storage
from bot.web import texts
from bot.web.auth import (
    GROUP_ADMIN,
    checked_form,
    client_address,
    current_user,
    login_failed,
    role_of,
    throttle_or_raise,
)
from bot.web.pages.overview import overview_page
from bot.web.rendering import render

logger = logging.getLogger("bot.web")
MAX_TOKEN_LENGTH = 128  # token_urlsafe(32) is 43 characters; anything much longer is not one of ours


async def home(request: Request) -> Response:
    user = current_user(request)
    if user is not None and user.is_admin:
        return await overview_page(request)
    groups: list[int] = []
    if user is not None and user.role == GROUP_ADMIN:
        groups = await request.app.state.moderation.administered_groups(
            user_id=user.user_id, admins=request.app.state.chat_admins
        )
    return render(request, "home.html", {"groups": groups})


async def login_page(request: Request) -> Response:
    """The link's page: says whether it works, and a button that uses it (nothing is used up by a GET)."""
    token = _token(request)
    throttle_or_raise(request)
    async with request.app.state.session_factory() as session:
        user_id = await storage.usable_web_login(session, token=token)
    if user_id is None:
        login_failed(request, "unknown, used or expired link (opened)")
        raise HTTPException(403, texts.LOGIN_LINK_INVALID)
    return render(request, "login.html")


async def login(request: Request) -> Response:
    token = _token(request)
    throttle_or_raise(request)
    await checked_form(request)
    async with request.app.state.session_factory.begin() as session:
        user_id = await storage.consume_web_login(session, token=token)
    if user_id is None:
        login_failed(request, "unknown, used or expired link")
        raise HTTPException(403, texts.LOGIN_LINK_INVALID)
    group_admin = False
    if role_of(request.app.state.settings, user_id) is None:  # not (or no longer) an admin or reviewer
        groups = await request.app.state.moderation.administered_groups(
            user_id=user_id, admins=request.app.state.chat_admins
        )
        if not groups:
            login_failed(request, f"user {user_id} is neither admin, reviewer nor a known group's admin")
            raise HTTPException(403, texts.LOGIN_NOT_ALLOWED)
        group_admin = True
    request.session.clear()  # a new session: nothing from before the login carries over
    request.session["uid"] = user_id
    if group_admin:
        request.session["group_admin"] = True  # their groups' pages only, each checked at every request
    request.state.web_user = None  # re-read on the next request
    logger.info("web login of user %s from %s", user_id, client_address(request))
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request)
    user = current_user(request)
    request.session.clear()
    request.session["flash"] = texts.LOGGED_OUT
    if user is not None:
        logger.info("web logout of user %s", user.user_id)
    return RedirectResponse("/", status_code=303)


def _token(request: Request) -> str:
    token = request.path_params["token"]
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        login_failed(request, "malformed link")
        raise HTTPException(403, texts.LOGIN_LINK_INVALID)
    return token


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/login/{token}", login_page, methods=["GET"]),
    Route("/login/{token}", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
