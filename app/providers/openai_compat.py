"""Any server that speaks OpenAI's /v1 API: OpenAI, DeepSeek, Ollama, LM Studio, vLLM, ...

The request body is passed through with only `model` (and the stream flags) replaced,
so fields the gateway does not know reach the upstream untouched.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import orjson

from ..config import ProviderSettings
from ..dialects.base import NativeEvent
from ..errors import UpstreamProtocolError, UpstreamStatusError
from ..sse import EventScanner, Framed, StreamItem
from ..wire import Chunk, Completion
from .base import Provider, decode_json_body, translate_http_errors
from .http import body_pieces, iter_events, open_stream, parsed_url, post_json, raw_body, read_capped


class OpenAICompatProvider(Provider):
    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient):
        super().__init__(settings)
        self.client = client
        self.base_url = (settings.base_url or "").rstrip("/")
        headers = {"content-type": "application/json"}
        headers.update(self.auth_headers())
        headers.update(dict(settings.headers))
        self.headers = headers

    # -- what differs between OpenAI-shaped APIs (Azure overrides these) ------------------
    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}

    def url(self, path: str, model: str) -> httpx.URL | str:
        """The URL of an operation (`/chat/completions`, `/embeddings`, `/responses`)."""
        return parsed_url(self.base_url + path)

    # -- pure request shaping ------------------------------------------------------------
    @staticmethod
    def request_body(body: dict[str, Any], model: str, *, stream: bool) -> bytes:
        out = dict(body)
        out["model"] = model
        if stream:
            out["stream"] = True
        else:
            # OpenAI refuses stream_options on a non-streamed request
            out.pop("stream", None)
            out.pop("stream_options", None)
        return orjson.dumps(out)

    # -- I/O -----------------------------------------------------------------------------
    async def complete(self, body: dict[str, Any], model: str) -> Completion:
        return await post_json(
            self.client,
            self.url("/chat/completions", model),
            self.request_body(body, model, stream=False),
            self.headers,
            self.name,
        )

    async def embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        out = dict(body)
        out["model"] = model
        return await post_json(self.client, self.url("/embeddings", model), orjson.dumps(out), self.headers, self.name)

    async def stream(self, body: dict[str, Any], model: str) -> AsyncGenerator[StreamItem, None]:
        async with open_stream(
            self.client,
            self.url("/chat/completions", model),
            self.request_body(body, model, stream=True),
            self.headers,
            self.name,
        ) as response:
            content_type = response.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                # some servers ignore `stream` and answer at once; replay it as chunks
                content = await read_capped(response, self.name)
                options = body.get("stream_options")
                include_usage = isinstance(options, dict) and options.get("include_usage") is True
                for chunk in completion_as_chunks(decode_json_body(self.name, content), include_usage):
                    yield chunk
                return
            if "text/event-stream" not in content_type:
                raise UpstreamProtocolError(
                    f"upstream '{self.name}' did not answer with a stream: content type {content_type or 'missing'}"
                )
            raw = raw_body(response)
            ended = (lambda: raw.complete) if raw is not None else (lambda: False)
            async for framed in passthrough(body_pieces(response), self.name, ended):
                yield framed

    # -- the Responses API, passed through when the upstream serves it -------------------
    def speaks(self, dialect: str) -> bool:
        return dialect == "responses" and self.settings.responses

    async def native_complete(
        self, dialect: str, body: dict[str, Any], model: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await post_json(
            self.client,
            self.url("/responses", model),
            self.request_body(body, model, stream=False),
            self.headers,
            self.name,
        )

    async def native_stream(
        self, dialect: str, body: dict[str, Any], model: str, headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        async with open_stream(
            self.client,
            self.url("/responses", model),
            self.request_body(body, model, stream=True),
            self.headers,
            self.name,
        ) as response:
            async for event, data in iter_events(response, self.name):
                if data is None:
                    continue
                kind = data.get("type") or event
                if kind in ("error", "response.failed"):
                    # not relayed as is: the gateway reports it, before the first byte even retries
                    failure = data.get("response", {}).get("error") if kind == "response.failed" else data
                    raise UpstreamStatusError(
                        f"upstream '{self.name}' failed: {(failure or {}).get('message') or 'unknown error'}",
                        status=502,
                        code=str((failure or {}).get("code") or "upstream_error"),
                    )
                yield NativeEvent(event if event != "message" else kind, data)
                if kind in ("response.completed", "response.incomplete"):
                    return
        raise UpstreamProtocolError(f"upstream '{self.name}' ended the stream before response.completed")


async def passthrough(
    pieces: AsyncIterator[bytes], provider: str, body_ended: Callable[[], bool] = lambda: False
) -> AsyncIterator[Framed]:
    """The upstream's events as it framed them, a read at a time: the chunks are not decoded
    (the model id in them stays the upstream's, as it always was). Ends normally only at
    `[DONE]`; an in-band error, a malformed event or an early end raise, after the events
    that came before them.

    Events read with `[DONE]` from a body that has ended (`body_ended()`) are `final`: the
    relay sends them with the stream's end in one write. When the body's end is still on
    its way, they are not: the relay then writes the end only after that end was read,
    so the connection is back in the pool before the client can ask again."""
    scanner = EventScanner()
    relayed = False
    with translate_http_errors(provider):
        async for piece in pieces:
            out = scanner.feed(piece)
            final = scanner.ended == "done" and body_ended()
            # [DONE] in a read of its own still tells the relay that the answer is whole (a
            # stream that is nothing but [DONE] stays one that sent nothing)
            if out or (final and relayed):
                usage, scanner.usage = scanner.usage, None
                yield Framed(out, usage, final=final)
                relayed = True
            if scanner.ended is not None:
                break
    if scanner.ended == "done":
        return
    if scanner.error is not None:
        check_in_band_error(provider, *scanner.error)
    if scanner.ended == "malformed":
        raise UpstreamProtocolError(f"upstream '{provider}' sent {scanner.problem}")
    raise UpstreamProtocolError(f"upstream '{provider}' ended the stream before [DONE]")


def check_in_band_error(provider: str, event: str, chunk: Chunk) -> None:
    """OpenAI-compatible servers report a failure mid-stream as an event with `error`, or
    as an `event: error` whose data holds the error's fields themselves."""
    error = chunk.get("error")
    if error or event == "error":
        if isinstance(error, dict):
            detail = error
        elif error:
            detail = {"message": str(error)}
        else:
            detail = chunk
        raise UpstreamStatusError(
            f"upstream '{provider}' failed mid-stream: {detail.get('message') or 'unknown error'}",
            status=502,
            code=str(detail.get("code") or "upstream_error"),
        )


def completion_as_chunks(completion: Any, include_usage: bool) -> list[Chunk]:
    """The chunks that an equivalent stream would have carried: one per choice, then the
    usage chunk only if the client asked for it (`stream_options.include_usage`)."""
    if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
        raise UpstreamProtocolError("upstream answered a stream request with an unexpected JSON body")
    base = {k: completion.get(k) for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    chunks = []
    for choice in completion["choices"]:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or {}
        delta = {k: v for k, v in message.items() if v is not None}
        if isinstance(delta.get("tool_calls"), list):
            delta["tool_calls"] = [dict(call, index=i) for i, call in enumerate(delta["tool_calls"])]
        chunks.append(
            dict(
                base,
                choices=[
                    {
                        "index": choice.get("index", 0),
                        "delta": delta,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            )
        )
    if include_usage and completion.get("usage"):
        chunks.append(dict(base, choices=[], usage=completion["usage"]))
    return chunks
