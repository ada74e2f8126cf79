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
from app.providers.http import new_client, pool_stats


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
