"""Serving the web app with uvicorn: beside the bot in its event loop (`moderator run` with WEB_PORT), or alone
(`moderator web`). The socket is bound before anything starts, so a busy port is one clear error, not a bot that
runs without its web app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn

from bot.moderation import ChatAdmins, Moderation
from bot.settings import Settings
from bot.web.app import create_app

logger = logging.getLogger("bot.web")

GRACEFUL_SHUTDOWN_S = 3.0
T = TypeVar("T")


class WebServerError(Exception):
    """The web app cannot listen; the message is one line for the operator."""


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handling: the process's owner (the bot's runner) stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        # Made with its protocol number, not 0: asyncio turns Nagle off (TCP_NODELAY) only on connections whose
        # socket says IPPROTO_TCP. With Nagle on, every response after a connection's first waited ~40 ms for
        # the client's delayed ACK between its headers and its body.
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen()
        except OSError:
            sock.close()
            raise
    except OSError as error:
        raise WebServerError(
            f"the web app cannot listen on {host}:{port}: {error.strerror or error}"
        ) from error
    sock.set_inheritable(True)
    return sock


def server_for(
    settings: Settings,
    moderation: Moderation,
    *,
    embedded: bool,
    port: int | None = None,
    chat_admins: ChatAdmins | None = None,
) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server for the web app and its bound socket (`port` overrides WEB_PORT; 0 picks a free one);
    `chat_admins` (the Telegram adapter's) lets groups' admins use their groups' pages."""
    port = settings.web_port if port is None else port
    if port is None:
        raise WebServerError("WEB_PORT is not set (or pass --port)")
    sock = bind(settings.web_host, port)
    config = uvicorn.Config(
        create_app(settings, moderation, chat_admins=chat_admins),
        lifespan="off",
        access_log=False,  # an access log would record login links, token included
        log_config=None,  # the process's logging (bot.cli) applies
        proxy_headers=True,  # client addresses from X-Forwarded-For, trusted from FORWARDED_ALLOW_IPS only
        server_header=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
    )
    server = (EmbeddedServer if embedded else uvicorn.Server)(config)
    return server, sock


def listening_port(sock: socket.socket) -> int:
    return sock.getsockname()[1]


async def serve_beside(
    run_bot: Callable[[], Coroutine[Any, Any, T]],
    settings: Settings,
    moderation: Moderation,
    *,
    chat_admins: ChatAdmins | None = None,
) -> T:
    """Serve the web app while `run_bot()` runs (in this event loop), then stop it: the bot's shutdown (its signal
    handlers, its fatal errors) ends both."""
    server, sock = server_for(settings, moderation, embedded=True, chat_admins=chat_admins)
    logger.info(
        "web app on %s:%d (links: %s)", settings.web_host, listening_port(sock), settings.web_public_url
    )
    web = asyncio.create_task(server.serve(sockets=[sock]), name="web")
    web.add_done_callback(_report_crash)
    try:
        return await run_bot()
    finally:
        await stop(server, web)
        sock.close()


async def stop(server: uvicorn.Server, task: asyncio.Task) -> None:
    server.should_exit = True
    try:
        await asyncio.wait_for(asyncio.shield(task), GRACEFUL_SHUTDOWN_S + 1.0)
    except TimeoutError:
        server.force_exit = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    except Exception:  # noqa: BLE001, S110 - a crash was already logged by _report_crash
        pass


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the web app stopped: %s", type(task.exception()).__name__, exc_info=task.exception())
