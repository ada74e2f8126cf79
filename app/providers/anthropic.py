"""Anthropic's Messages API behind the OpenAI chat interface: thin HTTP over pure transforms."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx
import orjson

from ..config import ProviderSettings
from ..dialects.anthropic import StreamTranslator, error_from_event, from_message, to_messages_request
from ..dialects.base import NativeEvent
from ..errors import UpstreamProtocolError
from ..wire import Chunk, Completion
from .base import Provider
from .http import iter_events, open_stream, post_json

API_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient):
        super().__init__(settings)
        self.client = client
        self.url = (settings.base_url or "https://api.anthropic.com").rstrip("/") + "/v1/messages"
        self.count_url = self.url + "/count_tokens"
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        headers.update(dict(settings.headers))
        self.headers = headers

    def _request(self, body: dict[str, Any], model: str, *, stream: bool) -> bytes:
        return orjson.dumps(
            to_messages_request(body, model, stream=stream, default_max_tokens=self.settings.default_max_tokens)
        )

    async def complete(self, body: dict[str, Any], model: str) -> Completion:
        message = await post_json(
            self.client, self.url, self._request(body, model, stream=False), self.headers, self.name
        )
        return from_message(message)

    async def stream(self, body: dict[str, Any], model: str) -> AsyncGenerator[Chunk, None]:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        translator = StreamTranslator(self.name, model, include_usage)
        async with open_stream(
            self.client, self.url, self._request(body, model, stream=True), self.headers, self.name
        ) as response:
            async for event, data in iter_events(response, self.name):
                if data is None:
                    continue
                for chunk in translator.feed(event, data):
                    yield chunk
                if translator.finished:
                    return
        raise UpstreamProtocolError(f"upstream '{self.name}' ended the stream before message_stop")

    # -- /v1/messages passed through unchanged (model replaced) ---------------------------
    def speaks(self, dialect: str) -> bool:
        return dialect == "anthropic"

    def _native_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        # the client's feature flags (anthropic-beta) and API version reach the upstream
        return {
            **self.headers,
            **{k: v for k, v in (headers or {}).items() if k in ("anthropic-beta", "anthropic-version")},
        }

    @staticmethod
    def _native_body(body: dict[str, Any], model: str, *, stream: bool) -> bytes:
        out = dict(body, model=model)
        if stream:
            out["stream"] = True
        else:
            out.pop("stream", None)
        return orjson.dumps(out)

    async def native_complete(
        self, dialect: str, body: dict[str, Any], model: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await post_json(
            self.client,
            self.url,
            self._native_body(body, model, stream=False),
            self._native_headers(headers),
            self.name,
        )

    async def native_stream(
        self, dialect: str, body: dict[str, Any], model: str, headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        async with open_stream(
            self.client, self.url, self._native_body(body, model, stream=True), self._native_headers(headers), self.name
        ) as response:
            async for event, data in iter_events(response, self.name):
                if data is None:
                    continue
                kind = data.get("type") or event
                if kind == "error":
                    raise error_from_event(data, self.name)
                yield NativeEvent(kind, data)
                if kind == "message_stop":
                    return
        raise UpstreamProtocolError(f"upstream '{self.name}' ended the stream before message_stop")

    async def count_tokens(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k not in ("stream", "max_tokens")}
        return await post_json(
            self.client, self.count_url, orjson.dumps(dict(out, model=model)), self.headers, self.name
        )
