"""Chunks -> SSE on the client's socket, with heartbeats and in-band errors.

Once the headers are out, the status cannot change: a failure becomes one
`data: {"error": ...}` event and the stream closes without `[DONE]`, so that no client
mistakes a truncated answer for a finished one. A client that leaves cancels this task
(Sanic does that); the `finally` blocks close the upstream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from loguru import logger
from sanic import HTTPResponse, Request
from sanic.http import Http

from .. import sse
from ..aio import finish
from ..dialects.base import StreamWriter
from ..errors import GatewayError, GatewayStopping
from ..routing.router import OpenStream
from ..wire import Chunk, error_body
from .accounting import RequestRecord
from .lean import Response


class ChatWriter:
    """OpenAI chat completions: chunks as they are, `[DONE]` at the end."""

    def write(self, chunk: Chunk) -> bytes:
        return sse.event(chunk)

    def finish(self) -> bytes:
        return sse.DONE

    def fail(self, error: GatewayError, redact: Callable[[str], str]) -> bytes:
        return sse.event(error_body(error, redact))


class Heartbeat:
    """Sends `: ping` whenever the stream has been silent for `interval` seconds.

    Each `send()` is a single transport write, so a ping never lands inside an event.
    A timer, not a task, watches the silence: a stream that never goes quiet costs one
    timer, and a task exists only while a ping is being sent."""

    def __init__(self, response: HTTPResponse, interval: float):
        self.response = response
        self.interval = interval
        self.last_write = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._stopped = False

    def start(self) -> None:
        if self.interval > 0:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._due)

    def wrote(self) -> None:
        self.last_write = time.monotonic()

    def _due(self) -> None:
        self._timer = None
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        wait = self.last_write + self.interval - time.monotonic()
        if wait > 0:
            self._timer = loop.call_later(wait, self._due)
        else:
            self._task = loop.create_task(self._ping(), name="heartbeat")

    async def _ping(self) -> None:
        try:
            await self.response.send(sse.PING)
        except (asyncio.CancelledError, Exception):
            return  # the client is gone or the stream ended; the relay sees to the rest
        self.wrote()
        if not self._stopped:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._due)

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def relay_stream(
    request: Request,
    stream: OpenStream,
    record: RequestRecord,
    heartbeat_interval: float,
    headers: dict[str, str],
    redact: Callable[[str], str],
    stopping: Callable[[], bool],
    writer: StreamWriter | None = None,
) -> None:
    """Write `stream` to the client as SSE (in the writer's dialect, OpenAI chat by default);
    the stream's first chunk is already in hand.

    The upstream is closed however this ends, even if the client left before the headers
    went out, and even if the task is cancelled again while closing it."""
    writer = writer or ChatWriter()
    if request.headers.get("origin") is not None and isinstance(request.stream, Http):
        # Chromium (so WebView2) may keep reading an aborted fetch's body to reuse the
        # connection ("draining", up to seconds): the gateway would see no disconnect and
        # the upstream would go on generating. A connection that closes after the answer
        # is never drained, so an abort in a page closes it at once.
        request.stream.keep_alive = False
    response = None
    try:
        response = await request.respond(
            Response(status=200, content_type="text/event-stream", headers={**sse.HEADERS, **headers})
        )
        record.status = 200
        heartbeat = Heartbeat(response, heartbeat_interval)
        heartbeat.start()
        ending, done_early = await _pump(stream, response, record, heartbeat, redact, writer)
        await response.send(ending, end_stream=True)  # the closing event and the end: one write
        record.answered = True
        if done_early:
            await stream.run_out()  # only the end of the upstream's body is left to read
    except asyncio.CancelledError:
        if stopping() and response is not None and not record.answered:
            # not the client leaving: tell it why the answer ends
            with contextlib.suppress(Exception):
                stopped = GatewayStopping("The gateway is shutting down; the answer is incomplete")
                await response.send(writer.fail(stopped, redact))
                await response.eof()
        raise
    finally:
        if not stream.ended:  # one that ran to its end closed itself on the way out
            await finish(stream.aclose())


async def _pump(
    stream: OpenStream,
    response: HTTPResponse,
    record: RequestRecord,
    heartbeat: Heartbeat,
    redact: Callable[[str], str],
    writer: StreamWriter,
) -> tuple[bytes, bool]:
    """Relays the chunks; returns the closing events (the writer's end, or the error that
    ended it), and whether the stream still has the end of its body to read. Events that
    came with the upstream's [DONE] go out with the end rather than on their own: one
    write, and the client has its whole answer before the rest of the body is read."""
    try:
        async for item in stream:
            if record.first_byte_ms is None:
                record.mark_first_byte()
            data = _write(writer, item, record)
            if isinstance(item, sse.Framed) and item.final:
                return data + writer.finish(), True
            if data:
                await response.send(data)
                heartbeat.wrote()
    except GatewayError as exc:
        record.error = exc.message
        return writer.fail(exc, redact), False
    except Exception as exc:  # a gateway bug: still end the stream the honest way
        logger.opt(exception=exc).error("relay failed for request {}", record.request_id)
        record.error = f"internal error: {type(exc).__name__}"
        return writer.fail(GatewayError("The gateway failed while relaying the stream"), redact), False
    finally:
        await heartbeat.stop()  # no ping may follow the closing event
    return writer.finish(), False


def _write(writer: StreamWriter, item: sse.StreamItem, record: RequestRecord) -> bytes:
    """The client's bytes for one stream item; notes the usage it carries."""
    if isinstance(item, sse.Framed):
        if item.usage is not None:
            record.observe_usage(item.usage)
        if isinstance(writer, ChatWriter):
            return item.data  # the upstream's chat events, passed through as they came
        return b"".join(writer.write(chunk) for chunk in sse.chunks_of(item))  # another dialect
    if "usage" in item:
        record.observe_usage(item["usage"])
    return writer.write(item)
