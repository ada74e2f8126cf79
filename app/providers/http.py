"""The one shared HTTP client for every HTTP provider, and the I/O they all do with it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource, SSEError

from ..aio import finish
from ..config import Timeouts
from ..errors import UpstreamProtocolError
from .base import decode_json_body, error_from_response, translate_http_errors

# Local upstreams (Ollama, LM Studio, a test server) must never go through a system proxy:
# httpx honours the proxy settings of the OS but not their bypass list.
_DIRECT = {
    "all://127.0.0.1": None,
    "all://localhost": None,
    "all://[::1]": None,
}


POOL_SHARDS = 8


class ShardedTransport(httpx.AsyncBaseTransport):
    """Spreads requests over a few connection pools, in turn.

    httpcore's pool does work per request that grows with the square of its connections
    (it re-scans them all, idle ones with a syscall each): under 64 concurrent short
    requests that more than doubled the gateway's CPU per request. N pools of 1/N the size
    do about 1/N of that work in total, and keep-alive reuse is unchanged (bench/bench.py:
    16 connections went from 839 to 1,658 req/s with eight pools)."""

    def __init__(self, shards: int, limits: httpx.Limits):
        self.max_connections = limits.max_connections or 256
        per_pool = httpx.Limits(
            max_connections=max(1, (limits.max_connections or 256) // shards),
            max_keepalive_connections=max(1, (limits.max_keepalive_connections or 64) // shards),
            keepalive_expiry=limits.keepalive_expiry,
        )
        # one TLS context for all: each holds its own copy of the CA bundle (about 0.7 MB)
        tls = httpx.create_ssl_context(trust_env=True)
        self._pools = [httpx.AsyncHTTPTransport(verify=tls, limits=per_pool) for _ in range(shards)]
        self._turn = itertools.cycle(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turn).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    def stats(self) -> dict[str, int]:
        """Connections in use, idle and free, and requests waiting for one, over all pools.

        What a leak looks like from inside: a connection stays active with nobody reading
        it, and once every one is, requests only wait. httpcore exposes its connections;
        the queue is read from the pool's request list (read only, never written)."""
        active = idle = waiting = 0
        for transport in self._pools:
            pool = getattr(transport, "_pool", None)
            for connection in getattr(pool, "connections", ()):
                if connection.is_closed():
                    continue
                if connection.is_idle():
                    idle += 1
                else:
                    active += 1
            waiting += sum(1 for r in getattr(pool, "_requests", ()) if r.is_queued())
        return {"limit": self.max_connections, "active": active, "idle": idle,
                "free": max(0, self.max_connections - active), "waiting": waiting}


def pool_stats(client: httpx.AsyncClient) -> dict[str, int]:
    """The shared client's pool state, for /health and /admin/stats."""
    transport = getattr(client, "_transport", None)  # the one new_client() gave it
    if isinstance(transport, ShardedTransport):
        return transport.stats()
    return {"limit": 0, "active": 0, "idle": 0, "free": 0, "waiting": 0}


def new_client(timeouts: Timeouts, max_connections: int = 256) -> httpx.AsyncClient:
    """The shared client; reads are bounded per request by the router's own deadlines."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=min(64, max_connections),
                          keepalive_expiry=30)
    return httpx.AsyncClient(
        # only connecting has a limit of its own: sending the request and waiting for a
        # pooled connection are part of the wait for the first byte, which the router bounds
        timeout=httpx.Timeout(connect=timeouts.connect, read=None, write=None, pool=None),
        limits=limits,
        transport=ShardedTransport(POOL_SHARDS, limits),
        follow_redirects=False,
        trust_env=True,  # system proxies apply to remote upstreams (their own transports)
        mounts=_DIRECT,
        headers={"user-agent": "ai-gateway"},
    )


@contextlib.asynccontextmanager
async def open_stream(client: httpx.AsyncClient, request: httpx.Request, provider: str
                      ) -> AsyncIterator[httpx.Response]:
    """Send a streamed request; an error status becomes our error; always closes the response.

    Leaving the block on cancellation closes the upstream connection at once."""
    with translate_http_errors(provider):
        response = await client.send(request, stream=True)
    try:
        if response.status_code >= 300:
            with translate_http_errors(provider):
                content = await response.aread()
            raise error_from_response(provider, response.status_code, response.headers, content)
        yield response
    finally:
        await finish(response.aclose())


async def iter_events(response: httpx.Response, provider: str) -> AsyncIterator[tuple[str, Any]]:
    """(event name, decoded JSON) for each non-empty SSE event; `[DONE]` comes as ("done", None)."""
    with translate_http_errors(provider):
        try:
            async for sse in EventSource(response).aiter_sse():
                if not sse.data:
                    continue
                if sse.data == "[DONE]":
                    yield "done", None
                    continue
                try:
                    data = orjson.loads(sse.data)
                except orjson.JSONDecodeError:
                    raise UpstreamProtocolError(f"upstream '{provider}' sent a malformed stream event") from None
                if not isinstance(data, dict):
                    raise UpstreamProtocolError(f"upstream '{provider}' sent a stream event that is not an object")
                yield sse.event, data
        except SSEError as exc:
            raise UpstreamProtocolError(f"upstream '{provider}' did not answer with a stream: {exc}") from None


async def post_json(client: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str],
                    provider: str) -> dict[str, Any]:
    """POST and return the JSON object of a successful answer."""
    with translate_http_errors(provider):
        response = await client.post(url, content=content, headers=headers)
    if response.status_code >= 300:
        raise error_from_response(provider, response.status_code, response.headers, response.content)
    data = decode_json_body(provider, response.content)
    if not isinstance(data, dict):
        raise UpstreamProtocolError(f"upstream '{provider}' answered with JSON that is not an object")
    return data
