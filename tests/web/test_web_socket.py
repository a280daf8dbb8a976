"""The web app's listening socket (`bot.web.serve.bind`)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bot.web.serve import WebServerError, bind, listening_port

pytestmark = pytest.mark.timeout(30)


async def test_connections_to_the_web_app_have_nagle_off():
    # asyncio sets TCP_NODELAY only on sockets that carry IPPROTO_TCP. With Nagle on, every response after a
    # connection's first waited for the client's delayed ACK (~40 ms) between its headers and its body.
    sock = bind("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(
            writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        )
        writer.close()

    server = await asyncio.start_server(on_connection, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", listening_port(sock))
        assert await asyncio.wait_for(accepted, 10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_busy_port_is_one_clear_error():
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(WebServerError, match="cannot listen on 127.0.0.1"):
            bind("127.0.0.1", listening_port(taken))
    finally:
        taken.close()
