"""A finished stream gives its upstream connection back for the next request.

An SSE stream's last event comes before the end of its chunked encoding; a gateway that
stops reading at `[DONE]` (or Anthropic's `message_stop`) leaves the body incomplete, and
the connection is closed instead of reused: against a remote API, every streamed request
would pay a new TCP and TLS handshake. The upstream here sends the end of the body 20 ms
after the last event, as a network would."""

from __future__ import annotations

import time

import pytest

from tests.support import collect, wait_until

STREAMS = 5


@pytest.mark.parametrize("model", ["up/slow-end", "claude/slow-end", "up/one-write"])
def test_streams_one_after_another_reuse_one_upstream_connection(client, upstream, model):
    # one-write: [DONE] and the body's end come in one read, so the last events, [DONE]
    # and the end of the answer go to the client in one write, and what is left of the
    # upstream's stream is wound up after it
    before = upstream.accepted_connections
    for _ in range(STREAMS):
        stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
        assert collect(stream)[0]
    # one new connection at most (the pool may hold an idle one from before)
    assert upstream.accepted_connections - before <= 1, upstream.accepted_connections - before


def test_a_body_that_never_ends_after_done_costs_the_client_nothing_and_is_closed(client, upstream):
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="up/never-ends", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert collect(stream)[0] and time.monotonic() - started < 3  # the wait for the rest is bounded
    seen = upstream.requests_for("never-ends")[-1]
    assert seen.peer_closed.wait(5), "the connection of an incomplete body was kept"
    assert wait_until(lambda: upstream.busy_connections == 0, 5)


@pytest.mark.parametrize("path", ["short", "httpx"])
def test_the_shared_client_reuses_the_connection_of_a_finished_stream_on_either_path(path):
    """In process, against a raw server: the short way to loopback upstreams and httpx's
    whole way (which remote upstreams take) both give the connection back."""
    import asyncio

    from app.config import ProviderSettings, Timeouts
    from app.providers.http import new_client
    from app.providers.openai_compat import OpenAICompatProvider

    accepted = []
    events = [b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n', b"data: [DONE]\n\n"]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                for event in events:
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                await asyncio.sleep(0.02)  # the end of the body comes a moment after [DONE]
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        client = new_client(Timeouts())
        client.follow_redirects = path == "httpx"  # a client that follows redirects takes httpx's way
        base_url = f"http://localhost:{server.sockets[0].getsockname()[1]}/v1"
        provider = OpenAICompatProvider(
            ProviderSettings(name="up", type="openai", models=("m",), base_url=base_url), client
        )
        try:
            for _ in range(STREAMS):
                items = [item async for item in provider.stream({"model": "m", "messages": []}, "m")]
                assert items
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())
    assert len(accepted) == 1, len(accepted)
