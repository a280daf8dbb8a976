"""Login by a one-time link, sessions, roles, CSRF and the login throttle, over real HTTP to uvicorn."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import bcrypt
import pytest
from sqlalchemy import select, update
from starlette.routing import Route
from web_helpers import ADMIN, GROUP, REVIEWER, STRANGER, csrf_of, login

from bot import storage
from bot.moderation import Actor, texts
from bot.storage import WebLogin
from bot.storage.models import utcnow
from bot.web import texts as web_texts

pytestmark = pytest.mark.timeout(600)  # the first test to start the app may train the session's scratch model


async def test_a_login_link_sets_a_session_cookie_and_stores_only_the_tokens_hash(start_web):
    web = await start_web()
    link = await web.link(REVIEWER)
    token = link.rsplit("/", 1)[1]
    async with web.client() as client:
        assert (await client.get("/queue")).status_code == 401
        response = await login(client, link)
        cookie = response.headers["set-cookie"]
        assert "moderator_session=" in cookie and "httponly" in cookie.lower()
        assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
        assert token not in cookie
        assert (await client.get("/queue")).status_code == 200
    async with web.session() as session:
        login_row = await session.scalar(select(WebLogin))
    assert login_row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert login_row.user_id == REVIEWER and login_row.used_at is not None
    assert login_row.expires_at - login_row.created_at == timedelta(minutes=10)


async def test_a_used_link_is_refused(start_web):
    web = await start_web()
    link = await web.link(ADMIN)
    async with web.client() as first:
        await login(first, link)
    path = "/login/" + link.rsplit("/", 1)[1]
    async with web.client() as second:
        page = await second.get(path)
        assert page.status_code == 403 and web_texts.LOGIN_LINK_INVALID in page.text
        # Straight to the POST, with this session's CSRF token (from another link's page): still only once.
        other = await second.get("/login/" + (await web.link(ADMIN)).rsplit("/", 1)[1])
        again = await second.post(path, data={"csrf_token": csrf_of(other.text)})
        assert again.status_code == 403 and web_texts.LOGIN_LINK_INVALID in again.text
        assert (await second.get("/queue")).status_code == 401


async def test_an_expired_link_is_refused(start_web):
    web = await start_web()
    link = await web.link(ADMIN)
    async with web.session() as session:
        await session.execute(update(WebLogin).values(expires_at=utcnow() - timedelta(seconds=1)))
    async with web.client() as client:
        page = await client.get("/login/" + link.rsplit("/", 1)[1])
        assert page.status_code == 403 and web_texts.LOGIN_LINK_INVALID in page.text


async def test_failed_logins_are_throttled_per_client_address(start_web):
    web = await start_web()
    async with web.client() as client:
        for attempt in range(10):
            response = await client.get(
                f"/login/not-a-token-{attempt}", headers={"X-Forwarded-For": "203.0.113.7"}
            )
            assert response.status_code == 403
        blocked = await client.get("/login/another", headers={"X-Forwarded-For": "203.0.113.7"})
        assert blocked.status_code == 429 and web_texts.LOGIN_THROTTLED in blocked.text
        # Even a good link waits: the throttle is checked first, and another address is not affected.
        good = await web.link(ADMIN)
        path = "/login/" + good.rsplit("/", 1)[1]
        assert (await client.get(path, headers={"X-Forwarded-For": "203.0.113.7"})).status_code == 429
        assert (await client.get(path, headers={"X-Forwarded-For": "198.51.100.2"})).status_code == 200


async def test_roles_reviewers_see_the_queue_only(start_web):
    web = await start_web()
    async with web.client(REVIEWER) as reviewer:
        assert (await reviewer.get("/queue")).status_code == 200
        home = await reviewer.get("/")
        refused = await reviewer.get("/models")
        assert refused.status_code == 403 and web_texts.ADMIN_ONLY in refused.text
        posted = await reviewer.post(
            f"/models/{web.versions[1]}/activate", data={"csrf_token": csrf_of(home.text)}
        )
        assert posted.status_code == 403
        rollback = await reviewer.post("/models/rollback/sentiment", data={"csrf_token": csrf_of(home.text)})
        assert rollback.status_code == 403
    async with web.session() as session:
        assert (await storage.get_active_model_version(session)).id == web.versions[0]  # nothing changed
    async with web.client(ADMIN) as admin:
        assert (await admin.get("/models")).status_code == 200
        assert (await admin.get("/queue")).status_code == 200
    async with web.client() as nobody:
        for path in ("/queue", "/models", f"/models/{web.versions[1]}/activate"):
            response = await nobody.get(path)
            assert response.status_code == 401 and web_texts.LOGIN_NEEDED in response.text


async def test_a_session_loses_its_rights_when_the_user_loses_the_role(start_web):
    web = await start_web()
    async with web.client(REVIEWER) as reviewer:
        web.app.state.settings = web.settings.model_copy(update={"reviewer_ids": frozenset()})
        assert (await reviewer.get("/queue")).status_code == 401


async def test_only_admins_and_reviewers_get_a_link_and_only_in_a_private_chat(start_web):
    web = await start_web()
    refused = await web.moderation.web_login_link(actor=Actor(user_id=STRANGER, is_admin=False), private=True)
    assert refused.text == texts.WEB_ONLY
    in_group = await web.moderation.web_login_link(actor=Actor(user_id=ADMIN, is_admin=True), private=False)
    assert in_group.text == texts.WEB_PRIVATE_ONLY
    async with web.session() as session:
        assert await session.scalar(select(WebLogin)) is None  # no link was issued


async def test_every_post_without_the_csrf_token_is_refused(start_web):
    web = await start_web()
    async with web.session() as session:  # a known group, so that its pages answer
        await storage.update_chat_policy(session, chat_id=GROUP, updated_by=ADMIN, mode="act")
    posts = [route.path for route in web.app.routes if isinstance(route, Route) and "POST" in route.methods]
    assert {"/logout", "/queue/answer", "/queue/undo", "/models/{version_id:int}/activate"} <= set(posts)
    assert {"/runs/start", "/chats/{chat_id}/settings", "/users/{user_id}/void"} <= set(posts)
    concrete = {
        "/login/{token}": "/login/" + (await web.link(ADMIN)).rsplit("/", 1)[1],
        "/models/{version_id:int}/activate": f"/models/{web.versions[1]}/activate",
        "/models/rollback/{task}": "/models/rollback/sentiment",
        "/chats/{chat_id}/settings": f"/chats/{GROUP}/settings",
        "/chats/{chat_id}/decisions/{decision_id:int}/{answer}": f"/chats/{GROUP}/decisions/1/undo",
        "/users/{user_id}/void": f"/users/{REVIEWER}/void",
    }
    # Every POST with a path parameter needs a concrete path here: a new one fails loudly until it is added.
    assert {path for path in posts if "{" in path} <= set(concrete), set(posts) - set(concrete)
    async with web.client(ADMIN) as admin:
        for path in posts:
            target = concrete.get(path, path)
            missing = await admin.post(target, data={"verdict_id": "1", "label": "0"})
            wrong = await admin.post(target, data={"csrf_token": "forged", "verdict_id": "1", "label": "0"})
            assert missing.status_code == 403 and web_texts.CSRF_FAILED in missing.text, path
            assert wrong.status_code == 403, path
        assert (await admin.get("/models")).status_code == 200  # still logged in: logout was refused too
    async with web.session() as session:
        assert (await storage.get_active_model_version(session)).id == web.versions[0]
        assert await storage.list_training_runs(session) == []  # /runs/start was refused


async def test_basic_auth_admin_sees_the_models_but_not_the_queue(start_web):
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    web = await start_web(web_basic_auth_hash=hashed)

    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}

    async with web.client() as client:
        assert (await client.get("/models", headers=basic("correct horse"))).status_code == 200
        assert (await client.get("/models", headers=basic("wrong"))).status_code == 401
        queue = await client.get("/queue", headers=basic("correct horse"))
        assert queue.status_code == 403 and web_texts.NO_TELEGRAM_ID in queue.text
