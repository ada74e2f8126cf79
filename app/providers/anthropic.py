"""Anthropic's Messages API behind the OpenAI chat interface: thin HTTP over pure transforms."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson

from ..config import ProviderSettings
from ..errors import UpstreamProtocolError
from ..wire import Chunk, Completion
from .anthropic_wire import StreamTranslator, from_message, to_messages_request
from .base import Provider
from .http import iter_events, open_stream, post_json

API_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient):
        super().__init__(settings)
        self.client = client
        self.url = (settings.base_url or "https://api.anthropic.com").rstrip("/") + "/v1/messages"
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        headers.update(dict(settings.headers))
        self.headers = headers

    def _request(self, body: dict[str, Any], model: str, *, stream: bool) -> bytes:
        return orjson.dumps(to_messages_request(body, model, stream=stream,
                                                default_max_tokens=self.settings.default_max_tokens))

    async def complete(self, body: dict[str, Any], model: str) -> Completion:
        message = await post_json(self.client, self.url, self._request(body, model, stream=False),
                                  self.headers, self.name)
        return from_message(message)

    async def stream(self, body: dict[str, Any], model: str) -> AsyncGenerator[Chunk, None]:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        translator = StreamTranslator(self.name, model, include_usage)
        request = self.client.build_request("POST", self.url, content=self._request(body, model, stream=True),
                                            headers=self.headers)
        async with open_stream(self.client, request, self.name) as response:
            async for event, data in iter_events(response, self.name):
                if data is None:
                    continue
                for chunk in translator.feed(event, data):
                    yield chunk
                if translator.finished:
                    return
        raise UpstreamProtocolError(f"upstream '{self.name}' ended the stream before message_stop")
