"""The aiohttp transport under httpx's API: aiohttp's errors become the httpx errors that
say what happened, so the provider boundary maps them to the right status (a refused or
reset connection is a 502, only a timeout a 504)."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import httpx
import pytest

from app.config import Timeouts
from app.providers.aio_transport import _mapped
from app.providers.http import body_pieces, close_response, new_client, pool_stats, send_post


class _Key:  # what aiohttp's connector errors carry about the connection
    ssl = None
    host = "127.0.0.1"
    port = 1


@pytest.mark.parametrize(
    "raised, expected",
    [
        (aiohttp.ClientConnectorError(_Key(), ConnectionRefusedError(111, "refused")), httpx.ConnectError),
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut short"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
        (aiohttp.InvalidURL("x"), httpx.UnsupportedProtocol),
    ],
)
def test_aiohttp_errors_become_the_httpx_error_for_what_happened(raised, expected):
    assert type(_mapped(raised)) is expected
    # the package's own wrapper (it calls a refused connection a connect timeout) is seen through
    wrapped = httpx.ConnectTimeout("as the package maps it")
    wrapped.__cause__ = raised
    assert type(_mapped(wrapped)) is expected


def test_a_refused_connection_is_a_connect_error_and_leaves_the_pool_empty():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def run():
        client = new_client(Timeouts(), max_connections=4)
        try:
            with pytest.raises(httpx.ConnectError):
                await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=b"{}")
            return pool_stats(client)
        finally:
            await client.aclose()

    stats = asyncio.run(run())
    assert stats == {"limit": 4, "active": 0, "idle": 0, "free": 4, "waiting": 0}


@pytest.mark.parametrize("complete", [False, True])
def test_a_pool_response_closed_under_repeated_cancellation_gives_its_connection_back(complete):
    """The client leaves mid-answer and Sanic cancels its handler twice: the upstream
    response, closed without `finish()`'s task, is still closed (or back in the pool after
    a complete body) before the second cancellation can land."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n" + (b"0\r\n\r\n" if complete else b"")

    async def run() -> tuple[dict[str, int], bool]:
        closed = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)  # the body: {}
            writer.write(head + body)
            await reader.read()  # until the gateway closes the connection (or the test ends)
            closed.set()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = new_client(Timeouts(), max_connections=4)
        try:
            url = httpx.URL(f"http://127.0.0.1:{port}/v1/chat/completions")
            response = await send_post(client, url, b"{}", {"content-type": "application/json"}, "up")
            pieces = body_pieces(response)
            assert await anext(pieces) == b"hello"
            if complete:
                assert await anext(pieces, None) is None

            async def handler() -> None:
                try:
                    await asyncio.sleep(10)
                finally:
                    await close_response(response)

            task = asyncio.ensure_future(handler())
            await asyncio.sleep(0.01)
            task.cancel()  # the failed write
            asyncio.get_running_loop().call_soon(task.cancel)  # the lost connection, a turn later
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = pool_stats(client)
            if not complete:
                await asyncio.wait_for(closed.wait(), 5)  # the upstream saw its connection end
            return stats, closed.is_set()
        finally:
            await client.aclose()
            server.close()

    stats, closed = asyncio.run(run())
    assert stats["active"] == 0
    if complete:
        assert stats["idle"] == 1 and not closed  # kept for the next request
