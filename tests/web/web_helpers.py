"""Helpers of the web app's tests: who they act as, the app under test, logging in through a link, CSRF fields."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.moderation import Actor, IncomingText, Moderation
from bot.settings import Settings

ADMIN = 111
REVIEWER = 222
STRANGER = 333
GROUP_ADMIN = 444  # a Telegram admin of GROUP only (FakeChatAdmins)
OTHER_GROUP_ADMIN = 555  # a Telegram admin of OTHER_GROUP only
GROUP = -1001
OTHER_GROUP = -1002
SERVER_START_TIMEOUT_S = 10.0
REVIEWS = (
    "배우들 연기가 정말 좋았고 다시 보고 싶어요",
    "시간 낭비였어요 스토리가 너무 지루했습니다",
    "음악이 아름답고 화면도 멋진 영화였어요",
    "돈이 아까운 최악의 영화 다시는 안 봐요",
    "그럭저럭 볼만했지만 결말이 조금 아쉬웠어요",
    "감독의 전작보다 훨씬 나아진 작품이네요",
    "중간에 졸았어요 너무 길고 지루한 영화",
)


@dataclass
class WebApp:
    url: str
    settings: Settings
    moderation: Moderation
    session_factory: Any
    versions: tuple[int, int]  # (active at start, a second registered version)
    server: Any
    app: Any
    chat_admins: Any = None

    def session(self) -> Any:
        return self.session_factory.begin()

    async def link(self, user_id: int) -> str:
        """A login link, issued by the same use case as `/web` in a private chat."""
        reply = await self.moderation.web_login_link(
            actor=Actor(user_id=user_id, is_admin=self.settings.is_admin(user_id)),
            private=True,
            admins=self.chat_admins,
        )
        match = re.search(r"(http://\S+/login/\S+)", reply.text)
        assert match, reply.text
        return match.group(1)

    @contextlib.asynccontextmanager
    async def client(self, user_id: int | None = None) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client of this server, logged in as `user_id` (through the link) unless None."""
        async with httpx.AsyncClient(base_url=self.url, follow_redirects=False, timeout=10.0) as client:
            if user_id is not None:
                await login(client, await self.link(user_id))
            yield client

    async def classify(self, text: str, *, message_id: int, user_id: int = 9000) -> None:
        """A review through the moderator's real path (the one the Telegram handler calls)."""
        await self.moderation.classify(
            IncomingText(chat_id=user_id, message_id=message_id, user_id=user_id, text=text)
        )


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def login(client: httpx.AsyncClient, link: str) -> httpx.Response:
    path = httpx.URL(link).path
    page = await client.get(path)
    assert page.status_code == 200, page.text
    response = await client.post(path, data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303, response.text
    return response


def web_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_ids": frozenset({ADMIN}),
        "reviewer_ids": frozenset({REVIEWER}),
        "fast_inference": False,  # torch fp32: no ONNX build in the tests
        "retrain_cron": None,
        "model_dir": tmp_path / "models",
        "runs_dir": tmp_path / "runs",
        "web_port": 0,
        "web_session_secret": "test-session-secret-0123456789",
        "batch_window_ms": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def wait_until_started(server: Any, task: asyncio.Task) -> None:
    async with asyncio.timeout(SERVER_START_TIMEOUT_S):
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise AssertionError("the web server stopped before it started")
            await asyncio.sleep(0.01)  # polls a condition, bounded by the timeout above


class FakeChatAdmins:
    """Who administers which group and the bot's rights there, as the bot's TelegramChatAdmins would say; it
    counts the questions, so that tests can see every request asked again."""

    def __init__(self, admins: dict[int, set[int]], rights: Any = None) -> None:
        self.admins = admins
        self.rights = rights
        self.asked: list[tuple[int, int]] = []

    async def is_admin(self, chat_id: int, user_id: int) -> bool:
        self.asked.append((chat_id, user_id))
        return user_id in self.admins.get(chat_id, set())

    async def bot_rights(self, chat_id: int) -> Any:
        return self.rights
