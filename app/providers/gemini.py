"""Google Gemini's native API (`generateContent`, `streamGenerateContent?alt=sse`) behind
the OpenAI chat interface: thin HTTP over the pure transforms of `dialects/gemini.py`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from ..config import ProviderSettings
from ..dialects.gemini import GeminiStreamTranslator, from_gemini_response, to_gemini_request
from ..errors import UpstreamProtocolError
from ..wire import Chunk, Completion
from .base import Provider
from .http import iter_events, open_stream, post_json


class SignatureMemory(OrderedDict[str, str]):
    """The thought signatures of recent function calls, by call id; the oldest go first."""

    def __init__(self, limit: int = 10_000):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class GeminiProvider(Provider):
    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient):
        super().__init__(settings)
        self.client = client
        self.base_url = (settings.base_url or "").rstrip("/")
        headers = {"content-type": "application/json"}
        if settings.api_key:
            headers["x-goog-api-key"] = settings.api_key
        headers.update(dict(settings.headers))
        self.headers = headers
        self.signatures = SignatureMemory()

    def url(self, model: str, method: str) -> str:
        model = model.removeprefix("models/")
        return f"{self.base_url}/models/{quote(model, safe='')}:{method}"

    async def complete(self, body: dict[str, Any], model: str) -> Completion:
        answer = await post_json(
            self.client,
            self.url(model, "generateContent"),
            orjson.dumps(to_gemini_request(body, self.signatures)),
            self.headers,
            self.name,
        )
        return from_gemini_response(answer, model, self.name, self.signatures)

    async def stream(self, body: dict[str, Any], model: str) -> AsyncGenerator[Chunk, None]:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        translator = GeminiStreamTranslator(self.name, model, include_usage, self.signatures)
        async with open_stream(
            self.client,
            self.url(model, "streamGenerateContent") + "?alt=sse",
            orjson.dumps(to_gemini_request(body, self.signatures)),
            self.headers,
            self.name,
        ) as response:
            async for _event, data in iter_events(response, self.name):
                if data is None:
                    continue
                for chunk in translator.feed(data):
                    yield chunk
                if translator.finished:
                    return
        raise UpstreamProtocolError(f"upstream '{self.name}' ended the stream before a finishReason")
