"""Slow clients against the local app (the daemon's API and dashboard, `swarm dashboard`): uvicorn
itself never closes a connection that sends no whole request head, so a slowloris could hold every
file descriptor of the daemon. Real uvicorn on 127.0.0.1, raw sockets as the clients."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from node.api_server import AppServer, HeadDeadline

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _serving(check: Callable[[int], Awaitable[None]]) -> None:
    server = AppServer(Starlette(routes=[Route("/", _ok)]))
    await server.start()
    try:
        await check(server.port)
    finally:
        await server.stop()


def test_a_client_that_sends_no_whole_request_head_is_cut_off(monkeypatch) -> None:
    monkeypatch.setattr(HeadDeadline, "head_s", 0.5)

    async def check(port: int) -> None:
        idle = await asyncio.open_connection("127.0.0.1", port)
        slow = await asyncio.open_connection("127.0.0.1", port)
        slow[1].write(b"GET / HTTP/1.1\r\nHost: 127")          # and never the rest
        for reader, _ in (idle, slow):
            assert await asyncio.wait_for(reader.read(), 60) == b""    # closed by the server
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)                                 # a whole head in time: answered
        assert (await asyncio.wait_for(reader.readline(), 60)).startswith(b"HTTP/1.1 200")
        writer.close()

    asyncio.run(_serving(check))


def test_connections_past_the_cap_are_closed_at_once(monkeypatch) -> None:
    cap = 3
    monkeypatch.setattr(HeadDeadline, "max_connections", cap)

    async def check(port: int) -> None:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap)]
        reader, _ = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 60) == b""    # one too many: closed
        reader, writer = held[0]
        writer.write(REQUEST)                                 # the ones held still work
        assert (await asyncio.wait_for(reader.readline(), 60)).startswith(b"HTTP/1.1 200")
        for _, w in held:
            w.close()

    asyncio.run(_serving(check))
