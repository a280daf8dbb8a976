"""Webhook traffic as Telegram and a load balancer make it, for tests and benchmarks of several bot processes:
reviews from the Bot API stand-in posted round robin to the processes' webhooks, 40 requests in flight (Telegram's
default `max_connections`), an update no process took posted to the next one (Telegram re-delivers), and the
replies counted per review."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from pathlib import Path

import httpx
from bot_process import START_TIMEOUT_S, BotProcess, bot_environment
from fake_telegram import FakeBotApi
from sqlalchemy import text

from bot import storage

IN_FLIGHT = 40  # Telegram's default max_connections for a webhook
SECRET = "shared-webhook-secret"
PATH = "/telegram"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_listening(process: BotProcess, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.process.returncode is not None:
            raise AssertionError(f"the bot exited:\n{process.output[-3000:]}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return
    raise AssertionError(f"the bot never listened on {port}:\n{process.output[-3000:]}")


class LoadBalancer:
    """Posts updates to the webhook of one of the ports, round robin. As Telegram does, an update that was not
    answered 200 (a timeout, a reset connection, a 5xx) is posted again, to the next port; a port that refuses
    connections is taken out (the health check). Counts the posts each port took, and the re-deliveries."""

    def __init__(self, ports: list[int], *, timeout_s: float = 30.0) -> None:
        self.ports = ports
        self.up = set(ports)
        self.taken: dict[int, int] = dict.fromkeys(ports, 0)
        self.redelivered = 0
        self._next = itertools.cycle(ports)
        self.client = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=IN_FLIGHT))

    async def post(self, update: dict) -> None:
        posted = False
        for _ in range(200):
            port = next(self._next)
            if port not in self.up:
                continue
            self.redelivered += posted
            posted = True
            try:
                response = await self.client.post(
                    f"http://127.0.0.1:{port}{PATH}",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                )
            except httpx.ConnectError:
                self.up.discard(port)  # nothing listens there any more: no more traffic to it
                continue
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if response.status_code == 200:
                self.taken[port] += 1
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no process took update {update['update_id']}")

    async def post_all(self, updates: list[dict]) -> None:
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(update: dict) -> None:
            async with slots:
                await self.post(update)

        await asyncio.gather(*(one(update) for update in updates))

    async def aclose(self) -> None:
        await self.client.aclose()


def reviews(api: FakeBotApi, count: int) -> tuple[list[dict], list[dict]]:
    """`count` reviews from 50 chats (messages, updates)."""
    messages = [
        api.push_message(
            f"리뷰 {i}번: 이 영화는 {'최고' if i % 2 else '최악'}이에요",
            user_id=7000 + i % 50,
            chat_id=7000 + i % 50,
        )
        for i in range(count)
    ]
    return messages, api.take_updates()


def reply_counts(api: FakeBotApi, messages: list[dict]) -> list[int]:
    """How many replies each message got (one pass over what was sent)."""
    counts: dict[tuple[int, int], int] = {}
    for sent in api.sent():
        replied = sent.get("reply_to_message", {}).get("message_id")
        key = (sent["chat"]["id"], replied)
        counts[key] = counts.get(key, 0) + 1
    return [counts.get((message["chat"]["id"], message["message_id"]), 0) for message in messages]


def webhook_bot_environment(database_url: str, api: FakeBotApi, workdir: Path) -> dict[str, str]:
    """The environment of a `moderator run` process in webhook mode (add WEBHOOK_PORT) against the stand-in."""
    return bot_environment(
        database_url,
        api,
        workdir,
        WEBHOOK_URL=f"https://bot.example.com{PATH}",
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_LISTEN="127.0.0.1",
        OMP_NUM_THREADS="1",
    )


async def inbox_rows(url: str) -> list[tuple[int, str, int, int | None]]:
    engine = storage.create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT update_id, status, attempts, claimed_by FROM telegram_updates ORDER BY update_id"
                )
            )
            return [tuple(row) for row in rows]
    finally:
        await engine.dispose()
