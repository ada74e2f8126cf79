"""The provider boundary over httpx.MockTransport: foreign errors become ours, streams are
read event by event, in-band errors and whole-JSON answers to stream requests are handled.
Fast: no sockets, no processes."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from app.config import ProviderSettings
from app.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from app.providers.base import translate_http_errors
from app.providers.http import iter_events, open_stream
from app.providers.openai_compat import OpenAICompatProvider
from app.sse import Framed

REQUEST = httpx.Request("POST", "http://up.test/v1/chat/completions")


@pytest.mark.parametrize(
    "raised, ours",
    [
        (httpx.ConnectError("refused", request=REQUEST), UpstreamUnreachable),
        (httpx.ConnectTimeout("slow", request=REQUEST), UpstreamTimeout),
        (httpx.ReadTimeout("slow", request=REQUEST), UpstreamTimeout),
        (httpx.PoolTimeout("no connection", request=REQUEST), UpstreamTimeout),
        (httpx.ReadError("reset", request=REQUEST), UpstreamProtocolError),
        (httpx.RemoteProtocolError("peer closed", request=REQUEST), UpstreamProtocolError),
        (httpx.DecodingError("bad gzip", request=REQUEST), UpstreamProtocolError),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), UpstreamUnreachable),
        (ConnectionResetError(104, "reset"), UpstreamUnreachable),
    ],
)
def test_foreign_errors_are_translated_at_the_boundary(raised, ours):
    with pytest.raises(ours) as info, translate_http_errors("up"):
        raise raised
    assert "'up'" in info.value.message
    assert info.value.__cause__ is raised


def sse(*events: bytes) -> bytes:
    return b"".join(events)


def provider(handler) -> OpenAICompatProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAICompatProvider(
        ProviderSettings(name="up", type="openai", models=("*",), base_url="http://up.test/v1"), client
    )


def stream_of(handler, body: dict | None = None) -> list:
    async def run() -> list:
        chunks = []
        async for item in provider(handler).stream(body or {"messages": []}, "m"):
            if isinstance(item, Framed):  # the upstream's events as bytes, as the client gets them
                chunks.extend(orjson.loads(e.removeprefix(b"data: ")) for e in item.data.split(b"\n\n")[:-1])
            else:
                chunks.append(item)
        return chunks

    return asyncio.run(run())


CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


@pytest.mark.parametrize(
    "body",
    [
        CHUNK + b"data: [DONE]\n\n",
        CHUNK.replace(b"\n", b"\r\n") + b"data: [DONE]\r\n\r\n",  # CRLF framing
        CHUNK.replace(b"\n", b"\r") + b"data: [DONE]\r\r",  # CR-only framing
        b": keep-alive\n\n" + CHUNK + b"data: [DONE]\n\n",  # a comment first
    ],
)
def test_a_stream_is_read_event_by_event_until_done(body):
    chunks = stream_of(lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["hi"]


@pytest.mark.parametrize(
    "body, error",
    [
        (CHUNK, UpstreamProtocolError),  # no [DONE]
        (CHUNK + b"data: {not json\n\n", UpstreamProtocolError),
        (CHUNK + b'data: {"error":{"message":"overloaded","code":"busy"}}\n\n', UpstreamStatusError),
        (CHUNK + b'event: error\ndata: {"message":"x"}\n\n', UpstreamStatusError),
    ],
)
def test_broken_and_failing_streams_raise_our_errors(body, error):
    with pytest.raises(error):
        stream_of(lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body))


@pytest.mark.parametrize(
    "event",
    [
        b'data: {"error":{"message":"overloaded now","code":"busy"}}\n\n',
        b'event: error\ndata: {"message":"overloaded now","code":"busy"}\n\n',  # the fields at the top
    ],
)
def test_an_in_band_error_keeps_the_upstreams_message_and_code(event):
    body = CHUNK + event
    with pytest.raises(UpstreamStatusError) as info:
        stream_of(lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    assert "overloaded now" in info.value.message and info.value.code == "busy"


@pytest.mark.parametrize(
    "status, headers, ours, client_status",
    [
        (429, {"retry-after": "3"}, UpstreamRateLimited, 429),
        (503, {}, UpstreamStatusError, 502),
        (401, {}, UpstreamStatusError, 401),
        (404, {}, UpstreamStatusError, 404),
        (504, {}, UpstreamStatusError, 504),
    ],
)
def test_an_error_status_becomes_our_error_with_the_sdk_status(status, headers, ours, client_status):
    body = b'{"error":{"message":"no","type":"x"}}'
    with pytest.raises(ours) as info:
        stream_of(lambda request: httpx.Response(status, headers=headers, content=body))
    assert info.value.status == client_status
    if status == 429:
        assert info.value.retry_after == 3


def test_a_whole_json_answer_to_a_stream_request_is_replayed_without_unasked_usage():
    completion = {
        "id": "c1",
        "created": 1,
        "model": "m",
        "usage": {"prompt_tokens": 1, "completion_tokens": 2},
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=completion)

    chunks = stream_of(handler)
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["whole"]
    with_usage = stream_of(handler, {"messages": [], "stream_options": {"include_usage": True}})
    assert with_usage[-1] == {
        "id": "c1",
        "created": 1,
        "model": "m",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": completion["usage"],
    }


def test_open_stream_closes_the_response_however_the_block_ends():
    closed = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield CHUNK

        async def aclose(self) -> None:
            closed.append(True)

    async def run() -> None:
        client = httpx.AsyncClient(
            transport=httpx.MockTransport(
                lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())
            )
        )
        with pytest.raises(UpstreamError):
            async with open_stream(client, "http://up.test/x", b"{}", {}, "up") as response:
                async for _ in iter_events(response, "up"):
                    raise UpstreamProtocolError("the consumer gave up")

    asyncio.run(run())
    assert closed == [True]


def test_the_shared_pool_keeps_no_upstream_cookie_over_a_real_socket():
    """The pool's own HTTP client (aiohttp) keeps cookies by default for any host that is
    not an IP address: `localhost` here, api.openai.com out there."""
    from app.config import Timeouts
    from app.providers.http import new_client, read_capped, send_post

    seen: list[str | None] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.decode().split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            seen.append(headers.get("cookie"))
            await reader.readexactly(int(headers.get("content-length", "0")))
            writer.write(b"HTTP/1.1 200 OK\r\nset-cookie: session=user-a; Path=/\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()

    async def run() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        url = f"http://localhost:{server.sockets[0].getsockname()[1]}/v1/x"
        client = new_client(Timeouts())
        try:
            for _ in range(2):  # the short way to a loopback upstream
                response = await send_post(client, url, b"{}", {}, "up")
                await read_capped(response, "up")
                await response.aclose()
            for _ in range(2):  # httpx's whole way, through the same pool
                request = client.build_request("POST", url, content=b"{}")
                await client.send(request, follow_redirects=True)
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())
    assert seen == [None, None, None, None]


def test_the_shared_client_keeps_no_upstream_cookie():
    """One client serves every request: a cookie set for one must not reach another."""
    from app.config import Timeouts
    from app.providers.http import new_client

    seen: list[str | None] = []

    async def run() -> None:
        client = new_client(Timeouts())
        client._transport = httpx.MockTransport(  # a remote upstream that sets a session cookie
            lambda request: (
                seen.append(request.headers.get("cookie")),
                httpx.Response(200, headers={"set-cookie": "session=user-a; Path=/"}),
            )[1]
        )
        for _ in range(2):
            await client.get("https://api.example.test/v1/models")
        await client.aclose()

    asyncio.run(run())
    assert seen == [None, None]
