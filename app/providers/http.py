"""The one shared HTTP client for every HTTP provider, and the I/O they all do with it."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource, SSEError

from ..aio import finish, unwatched
from ..config import Timeouts
from ..errors import UpstreamProtocolError
from ..sse import MAX_EVENT
from .aio_transport import RAW_BODY, AiohttpPool, RawBody, UpstreamClient
from .base import decode_json_body, error_from_response, translate_http_errors

# Local upstreams (Ollama, LM Studio, a test server) must never go through a system proxy:
# httpx honours the proxy settings of the OS but not their bypass list.
_DIRECT = {
    "all://127.0.0.1": None,
    "all://localhost": None,
    "all://[::1]": None,
}


def pool_stats(client: httpx.AsyncClient) -> dict[str, int]:
    """The shared client's pool state, for /health and /admin/stats."""
    transport = getattr(client, "_transport", None)  # the one new_client() gave it
    if isinstance(transport, AiohttpPool):
        return transport.stats()
    return {"limit": 0, "active": 0, "idle": 0, "free": 0, "waiting": 0}


def new_client(timeouts: Timeouts, max_connections: int = 256) -> httpx.AsyncClient:
    """The shared client; reads are bounded per request by the router's own deadlines."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=min(64, max_connections), keepalive_expiry=30
    )
    return UpstreamClient(
        # only connecting has a limit of its own: sending the request and waiting for a
        # pooled connection are part of the wait for the first byte, which the router bounds
        timeout=httpx.Timeout(connect=timeouts.connect, read=None, write=None, pool=None),
        limits=limits,
        # aiohttp's C parser and pool behind httpx's API: see aio_transport.py
        transport=AiohttpPool(limits, httpx.create_ssl_context(trust_env=True)),
        follow_redirects=False,
        trust_env=True,  # system proxies apply to remote upstreams (their own transports)
        mounts=_DIRECT,
        headers={"user-agent": "ai-gateway"},
        # one client serves every user's requests: a cookie an upstream sets for one must
        # never ride along on another's
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


@functools.lru_cache(maxsize=256)
def parsed_url(url: str) -> httpx.URL | str:
    """`url` parsed once: httpx parses a URL given as text on every request. One it cannot
    parse stays text, to fail when used as an unreachable upstream, as before."""
    try:
        return httpx.URL(url)
    except httpx.InvalidURL:
        return url


async def send_post(
    client: httpx.AsyncClient, url: httpx.URL | str, content: bytes, headers: Mapping[str, str], provider: str
) -> httpx.Response:
    """POST; the answer with its body still to be read. The shared client takes its short
    way to loopback upstreams; any other client (a test's) takes httpx's."""
    if isinstance(url, str):
        url = parsed_url(url)
    with translate_http_errors(provider):
        if isinstance(client, UpstreamClient) and isinstance(url, httpx.URL):
            return await client.open_post(url, content, headers)
        return await client.send(client.build_request("POST", url, content=content, headers=headers), stream=True)


def open_stream(
    client: httpx.AsyncClient, url: httpx.URL | str, content: bytes, headers: Mapping[str, str], provider: str
) -> _StreamingPost:
    """POST for a streamed answer (`async with ... as response`); an error status becomes
    our error; always closes the response. Leaving the block on cancellation closes the
    upstream connection at once."""
    return _StreamingPost(client, url, content, headers, provider)


class _StreamingPost:
    """`open_stream`'s block: a class, where a generator-based context manager would cost
    every streamed request a few microseconds more."""

    __slots__ = ("client", "url", "content", "headers", "provider", "response")

    def __init__(
        self, client: httpx.AsyncClient, url: httpx.URL | str, content: bytes, headers: Mapping[str, str], provider: str
    ):
        self.client, self.url, self.content, self.headers, self.provider = client, url, content, headers, provider
        self.response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        response = await send_post(self.client, self.url, self.content, self.headers, self.provider)
        if response.status_code >= 300:
            try:
                body = await read_capped(response, self.provider, MAX_ERROR_BODY, truncate=True)
            finally:
                await close_response(response)
            raise error_from_response(self.provider, response.status_code, response.headers, body)
        self.response = response
        return response

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        response = self.response
        assert response is not None
        try:
            if exc is None:
                # the block ended normally, so the upstream finished its answer: what is left
                # of the body (the end of its chunked encoding) is read, and the connection
                # serves the next request instead of a new one (a TLS handshake to a remote
                # API) being opened
                raw = raw_body(response)
                if raw is not None and not raw.complete:
                    # bounded on its own: the request's deadlines, which may run out
                    # meanwhile, are for the answer, and the answer is whole
                    unwatched()
                    await raw.drain(DRAIN_SECONDS, DRAIN_BYTES)
        finally:
            await close_response(response)


async def close_response(response: httpx.Response) -> None:
    """Closes an upstream response however the caller is cancelled meanwhile: its
    connection goes back to the pool after a complete body, and is closed before its end.

    The pool's own responses do all of that in the close's first step, before anything is
    awaited (aiohttp's `release()`), so no cancellation can cut it short and they are closed
    directly; any other (a proxy's, through httpcore's awaits) is closed through `finish()`,
    which costs a task and two turns of the loop."""
    if raw_body(response) is not None:
        await response.aclose()
    else:
        await finish(response.aclose())


#: what a finished stream may still send before its connection is given up for reuse
DRAIN_SECONDS = 0.25
DRAIN_BYTES = 64 * 1024


def raw_body(response: httpx.Response) -> RawBody | None:
    """The body as the pool's transport reads it (None for another transport's response:
    a proxy's, a test's)."""
    body = response.extensions.get(RAW_BODY)
    return body if isinstance(body, RawBody) else None


def body_pieces(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive. A body without a content coding comes straight
    from the pool's transport: httpx's decoding and chunking layers have nothing to do on
    it, and cost a few generator steps per read."""
    raw = raw_body(response)
    if raw is not None and "content-encoding" not in response.headers:
        return raw.__aiter__()
    return response.aiter_bytes()


#: a whole answer (or an error's body) is held in memory: an upstream that never stops
#: sending must not be able to take the gateway's memory with it
MAX_BODY = 64 * 2**20
MAX_ERROR_BODY = 2**20


async def read_capped(
    response: httpx.Response, provider: str, limit: int = MAX_BODY, *, truncate: bool = False
) -> bytes:
    """The body, at most `limit` bytes: past that a protocol error, or (`truncate`, for an
    error's body, which is only quoted in part) the first `limit` bytes."""
    parts, size = [], 0
    with translate_http_errors(provider):
        async for data in body_pieces(response):
            size += len(data)
            if size > limit:
                if truncate:
                    parts.append(data[: len(data) - (size - limit)])
                    break
                raise UpstreamProtocolError(f"upstream '{provider}' sent a body over {limit // 2**20} MB")
            parts.append(data)
    return b"".join(parts)


class _LineCapped:
    """The response as httpx-sse reads it, refusing a line longer than `limit` bytes (an
    upstream that never ends a line would otherwise grow one without bound)."""

    def __init__(self, response: httpx.Response, provider: str, limit: int):
        self.headers = response.headers
        self._response, self._provider, self._limit = response, provider, limit

    async def aiter_text(self) -> AsyncIterator[str]:
        since_break = 0
        async for text in self._response.aiter_text():
            cut = max(text.rfind("\n"), text.rfind("\r"))
            since_break = len(text) - cut - 1 if cut >= 0 else since_break + len(text)
            if since_break > self._limit:
                raise UpstreamProtocolError(
                    f"upstream '{self._provider}' sent a stream line over {self._limit // 2**20} MB"
                )
            yield text


async def iter_events(response: httpx.Response, provider: str) -> AsyncIterator[tuple[str, Any]]:
    """(event name, decoded JSON) for each non-empty SSE event; `[DONE]` comes as ("done", None)."""
    with translate_http_errors(provider):
        try:
            async for sse in EventSource(_LineCapped(response, provider, MAX_EVENT)).aiter_sse():  # type: ignore[arg-type]
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


async def post_json(
    client: httpx.AsyncClient, url: httpx.URL | str, content: bytes, headers: Mapping[str, str], provider: str
) -> dict[str, Any]:
    """POST and return the JSON object of a successful answer."""
    response = await send_post(client, url, content, headers, provider)
    try:
        if response.status_code >= 300:
            body = await read_capped(response, provider, MAX_ERROR_BODY, truncate=True)
            raise error_from_response(provider, response.status_code, response.headers, body)
        body = await read_capped(response, provider)
    finally:
        await close_response(response)
    data = decode_json_body(provider, body)
    if not isinstance(data, dict):
        raise UpstreamProtocolError(f"upstream '{provider}' answered with JSON that is not an object")
    return data
