"""The built-in offline model: streams the last user message back, word by word."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator
from typing import Any

from .. import wire
from ..wire import Chunk, Completion
from .base import Provider

_WORD = re.compile(r"\S+\s*")


def count_words(messages: Any) -> int:
    """A stand-in token count: the words of every text in the conversation."""
    total = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            total += sum(
                len(p.get("text", "").split())
                for p in content
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return total


class EchoProvider(Provider):
    async def complete(self, body: dict[str, Any], model: str) -> Completion:
        text = wire.last_user_text(body.get("messages", []))
        return wire.completion(
            wire.new_completion_id(),
            model,
            {"role": "assistant", "content": text},
            "stop",
            wire.usage(count_words(body.get("messages")), len(text.split())),
        )

    async def stream(self, body: dict[str, Any], model: str) -> AsyncGenerator[Chunk, None]:
        text = wire.last_user_text(body.get("messages", []))
        cid, created = wire.new_completion_id(), int(time.time())
        yield wire.chunk(cid, model, created, delta={"role": "assistant", "content": ""})
        words = _WORD.findall(text.lstrip())
        for word in words:
            yield wire.chunk(cid, model, created, delta={"content": word})
        # finish_reason goes on its own chunk, as the OpenAI stream does
        yield wire.chunk(cid, model, created, finish_reason="stop")
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield wire.usage_chunk(cid, model, created, wire.usage(count_words(body.get("messages")), len(words)))
