"""httpx's API over aiohttp's C HTTP parser and connection pool (the `httpx-aiohttp` transport).

httpx's default transport parses HTTP/1.1 in pure Python (h11) and runs its pool through
anyio: under load that was about half of the gateway's CPU per request (bench/profile.py).
This transport keeps every caller on httpx's API and its exceptions, with these changes
to the package's own:

- the URL goes out exactly as httpx built it (aiohttp would re-normalise text);
- errors are mapped by what happened (refused, reset, peer closed, timed out), not by the
  package's table, which reports a refused connection or a server that hung up as a
  connect *timeout* (504 instead of 502 here);
- the body is read a socket read at a time (`RawBody`), and can be drained after its
  content has been used, so that its connection is reused;
- the session keeps no cookies: it serves every user's requests;
- `stats()` reads the pool's state for /health and /admin/stats.

A response closed before its end (the client left) closes its connection at once:
aiohttp returns a connection to the pool only after a complete body.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport


def _mapped(exc: BaseException) -> httpx.HTTPError | None:
    """The httpx exception for what aiohttp (or the package's wrapper of it) raised."""
    cause = exc.__cause__ if isinstance(exc, httpx.HTTPError) and exc.__cause__ is not None else exc
    message = str(cause) or type(cause).__name__
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx.ReadTimeout(message)
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(f"the server closed the connection ({message})")
    if isinstance(cause, aiohttp.ClientPayloadError):
        # aiohttp's text for it quotes its own exception objects: the client gets the fact
        return httpx.RemoteProtocolError("incomplete body: the upstream closed the connection before its end")
    if isinstance(cause, (aiohttp.ClientOSError, aiohttp.ClientConnectionError, ConnectionError)):
        return httpx.ReadError(message)  # a reset or broken pipe on an open connection
    if isinstance(cause, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(f"an invalid HTTP answer ({message})")
    if isinstance(cause, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(cause, aiohttp.ClientError):
        return httpx.TransportError(message)
    return exc if isinstance(exc, httpx.HTTPError) else None


class _Mapping:
    """Raises the httpx exception for what aiohttp raised in its block (see `_mapped`). A
    class rather than a generator-based context manager: each request enters a few."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, (TimeoutError, aiohttp.ClientError, httpx.HTTPError, ConnectionError)):
            mapped = _mapped(exc)
            if mapped is not None and mapped is not exc:
                raise mapped from exc


_mapping = _Mapping()


class RawBody(httpx.AsyncByteStream):
    """The response body a socket read at a time, as aiohttp gets it, with errors mapped
    as above. (The package's stream cuts it into 16 KB pieces under two more layers.)"""

    def __init__(self, answer: aiohttp.ClientResponse):
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._answer.content
        with _mapping:
            while data := await content.readany():
                yield data

    async def aclose(self) -> None:
        with _mapping:
            # back to the pool after a complete body; closed at once before its end
            await self._answer.__aexit__(None, None, None)

    @property
    def complete(self) -> bool:
        """The whole body has been read: nothing is left to drain."""
        return self._answer.content.at_eof()

    async def drain(self, seconds: float, limit: int) -> None:
        """Reads what is left of a body whose content has all been used: an SSE stream
        ends its last event before its chunked encoding ends, and a connection is only
        reused once the body is complete. Bounded in time and bytes; any failure leaves
        the body incomplete, and its connection is closed as before."""
        content = self._answer.content
        if content.at_eof():
            return
        size = 0
        try:
            async with asyncio.timeout(seconds):
                while data := await content.readany():
                    size += len(data)
                    if size > limit:
                        return
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return


#: the response extension that holds its RawBody
RAW_BODY = "ai_gateway.raw_body"


@functools.lru_cache(maxsize=256)
def _wire_url(url: str) -> yarl.URL:
    """The URL exactly as httpx built it (see `AiohttpPool.exchange`); parsed once."""
    return yarl.URL(url, encoded=True)


@functools.lru_cache(maxsize=64)
def _timeouts(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


class AiohttpPool(AiohttpTransport):
    """The shared client's transport: one aiohttp pool of `limits.max_connections`."""

    def __init__(self, limits: httpx.Limits, verify: ssl.SSLContext):
        super().__init__(verify=verify, limits=limits, trust_env=True)
        self.max_connections = limits.max_connections or 256

    def get_client(self) -> aiohttp.ClientSession:
        """The pool's session. Without a cookie jar: one session serves every user's
        requests, so a cookie an upstream sets for one must never ride along on another's
        (aiohttp keeps them by default, for every host that is not an IP address)."""
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context, limit=self.max_connections
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """httpx's request through the pool (see `exchange`)."""
        timeout = request.extensions.get("timeout", {})
        try:
            data: Any = request.content or None
        except httpx.RequestNotRead:
            data = request.stream
            request.headers.pop("transfer-encoding", None)  # aiohttp frames the body itself
        return await self.exchange(
            request.method,
            str(request.url),
            request.headers.multi_items(),
            data,
            _timeouts(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
            request.extensions.get("sni_hostname"),
            request,
        )

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Any,
        data: Any,
        timeout: aiohttp.ClientTimeout,
        server_hostname: str | None = None,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """One request; the answer as an httpx response whose body is still to be read.

        The URL goes out exactly as httpx built it: given as text, aiohttp would normalise
        it and decode escapes such as %3A in a path (a model id in Gemini's
        `/models/<id>:method`), so the upstream would see another path."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        with _mapping:
            answer = await self.client.request(
                method,
                _wire_url(url),
                headers=headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=None,
                timeout=timeout,
                server_hostname=server_hostname,
            )
        body = RawBody(answer)
        # httpx wraps a response's stream on its own path: the extension keeps the body
        # within reach whichever way the request went (see http.raw_body)
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1", RAW_BODY: body}
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode()
        return httpx.Response(
            status_code=answer.status, headers=answer.raw_headers, stream=body, request=request, extensions=extensions
        )

    def stats(self) -> dict[str, int]:
        """Connections in use, idle and free, and requests waiting for one.

        What a leak looks like from inside: a connection stays in use with nobody reading
        it, and once every one is, requests only wait. Read from the connector's own
        bookkeeping (read only, never written)."""
        connector = self.client.connector if isinstance(self.client, aiohttp.ClientSession) else None
        active = idle = waiting = 0
        if connector is not None:
            active = len(getattr(connector, "_acquired", ()))
            idle = sum(len(c) for c in getattr(connector, "_conns", {}).values())
            waiting = sum(len(w) for w in getattr(connector, "_waiters", {}).values())
        return {
            "limit": self.max_connections,
            "active": active,
            "idle": idle,
            "free": max(0, self.max_connections - active),
            "waiting": waiting,
        }


#: hosts the shared client reaches without a proxy (see http.py's mounts)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class UpstreamClient(httpx.AsyncClient):
    """The shared client, with a short way to loopback upstreams.

    A request to a loopback host (Ollama, LM Studio, vLLM, llama.cpp on this machine) goes
    straight to the pool: no proxy applies to it, the gateway sends no auth flow and
    follows no redirects, and it keeps no cookies (an upstream's cookie is not for the
    next user). That skips httpx's per-request machinery, which cost about as much CPU as
    the HTTP exchange itself (bench/profile.py). Other hosts take httpx's whole path,
    proxies included; their network time dwarfs it."""

    def __init__(self, *, transport: AiohttpPool, **kwargs: Any):
        super().__init__(transport=transport, **kwargs)
        self.pool = transport
        self._merged_headers: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}

    def direct(self, url: httpx.URL) -> bool:
        """True when a request to `url` may skip httpx's machinery (see the class)."""
        return url.host in LOOPBACK_HOSTS and not self.is_closed and self.auth is None and not self.follow_redirects

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if (
            not self.direct(request.url)
            or auth is not httpx.USE_CLIENT_DEFAULT
            or follow_redirects not in (httpx.USE_CLIENT_DEFAULT, False)
        ):
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        response = await self.pool.handle_async_request(request)
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response

    async def open_post(self, url: httpx.URL, content: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST `content`; the answer's body is still to be read. A loopback upstream's
        request is not even built as an httpx request: the client's headers and the
        caller's are merged once per set of headers."""
        if not self.direct(url):
            return await self.send(self.build_request("POST", url, content=content, headers=headers), stream=True)
        timeout = _timeouts(self.timeout.connect, self.timeout.read, self.timeout.pool)
        return await self.pool.exchange("POST", str(url), self._merged(tuple(headers.items())), content, timeout)

    def _merged(self, headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        merged = self._merged_headers.get(headers)
        if merged is None:
            if len(self._merged_headers) >= 64:  # a caller whose headers vary per request
                self._merged_headers.clear()
            combined = httpx.Headers(self.headers)
            combined.update(dict(headers))
            merged = self._merged_headers[headers] = tuple(combined.multi_items())
        return merged
