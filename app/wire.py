"""OpenAI wire shapes and the few constructors every layer shares.

Chunks and completions travel through the gateway as plain dicts in the OpenAI
`chat.completion.chunk` / `chat.completion` shape, so that fields the gateway does not
know pass through untouched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypedDict

from .errors import GatewayError

Chunk = dict[str, Any]
Completion = dict[str, Any]


class ErrorDetail(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(TypedDict):
    error: ErrorDetail


def error_body(exc: GatewayError, redact: Callable[[str], str] = str) -> ErrorBody:
    """The OpenAI error body for any gateway error (the one rendering path).

    `redact` masks credentials: an upstream's message may quote the key it was sent."""
    return {
        "error": {
            "message": redact(exc.message),
            "type": exc.type,
            "param": exc.param,
            "code": exc.code,
        }
    }


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def chunk(
    completion_id: str,
    model: str,
    created: int,
    *,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
) -> Chunk:
    """One `chat.completion.chunk` with a single choice."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage_chunk(completion_id: str, model: str, created: int, usage: dict[str, int]) -> Chunk:
    """The extra chunk of `stream_options.include_usage`: no choices, only usage."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    completion_id: str,
    model: str,
    message: dict[str, Any],
    finish_reason: str | None,
    usage_: dict[str, int] | None = None,
) -> Completion:
    """A non-streamed `chat.completion` with a single choice."""
    body: Completion = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage_ is not None:
        body["usage"] = usage_
    return body


def model_object(model_id: str, owned_by: str, created: int = 0) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message; multi-part content keeps its text parts."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            )
        return ""
    return ""
