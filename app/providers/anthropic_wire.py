"""Anthropic Messages API <-> OpenAI chat completions. Pure: no I/O.

Names follow the direction of the conversion: `to_messages_request` (OpenAI request ->
Anthropic), `from_message` (Anthropic answer -> OpenAI completion), and
`StreamTranslator` (Anthropic stream events -> OpenAI chunks).
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from .. import wire
from ..errors import InvalidRequest, UpstreamProtocolError, UpstreamStatusError, is_retryable_status
from ..wire import Chunk, Completion

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.S)

# Anthropic's error types -> the status their HTTP answer would have had
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


# -- request ------------------------------------------------------------------------------

def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest("image_url parts need a 'url'", param="messages")
    match = _DATA_URL.match(url)
    if match:
        return {"type": "image", "source": {"type": "base64", "media_type": match["media"], "data": match["data"]}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        else:
            raise InvalidRequest(f"content part type '{kind}' is not supported by Anthropic models",
                                 param="messages")
    return blocks


def _tool_use_blocks(tool_calls: Any) -> list[dict[str, Any]]:
    blocks = []
    for call in tool_calls or []:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            raise InvalidRequest("tool call arguments must be JSON", param="messages") from None
        blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "",
                       "input": parsed if isinstance(parsed, dict) else {}})
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants user and assistant turns to alternate: merge neighbours."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is None:
        return None
    if choice in (None, "auto"):
        result: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        raise InvalidRequest("unsupported tool_choice", param="tool_choice")
    if parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def to_messages_request(body: dict[str, Any], model: str, *, stream: bool, default_max_tokens: int) -> dict[str, Any]:
    """An OpenAI chat request as an Anthropic Messages request."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content)
            if text:
                system.append(text)
        elif role == "user":
            _append(messages, "user", _content_blocks(content))
        elif role == "assistant":
            _append(messages, "assistant", _content_blocks(content) + _tool_use_blocks(message.get("tool_calls")))
        elif role in ("tool", "function"):
            _append(messages, "user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id") or "",
                                        "content": _text_of(content)}])
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens,
    }
    if system:
        out["system"] = "\n\n".join(system)
    if stream:
        out["stream"] = True
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)  # OpenAI allows up to 2
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": t["function"].get("name", ""),
                **({"description": t["function"]["description"]} if t["function"].get("description") else {}),
                "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}},
            }
            for t in tools if isinstance(t.get("function"), dict)
        ]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    return out


# -- response ------------------------------------------------------------------------------

def usage_from(usage: Any) -> dict[str, int] | None:
    if not isinstance(usage, dict):
        return None
    # cached input still counts as input, as in OpenAI's prompt_tokens
    prompt = sum(int(usage.get(k) or 0) for k in
                 ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return wire.usage(prompt, int(usage.get("output_tokens") or 0))


def from_message(message: dict[str, Any]) -> Completion:
    """An Anthropic Messages answer as an OpenAI chat completion."""
    if not isinstance(message.get("content"), list):
        raise UpstreamProtocolError("the Anthropic answer has no content list")
    text, calls = [], []
    for block in message["content"]:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function", "function": {
                "name": block.get("name", ""), "arguments": orjson.dumps(block.get("input", {})).decode()}})
    out: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        out["tool_calls"] = calls
    completion = wire.completion(message.get("id") or wire.new_completion_id(), message.get("model", ""), out,
                                 STOP_REASONS.get(message.get("stop_reason") or "", "stop"),
                                 usage_from(message.get("usage")))
    return completion


def error_from_event(data: dict[str, Any], provider: str) -> UpstreamStatusError:
    error: dict[str, Any] = data["error"] if isinstance(data.get("error"), dict) else {}
    kind = error.get("type") or "api_error"
    status = ERROR_STATUS.get(kind, 500)
    return UpstreamStatusError(
        f"upstream '{provider}' failed mid-stream: {error.get('message') or kind}",
        status=502 if status >= 500 else status, code=kind, retryable=is_retryable_status(status),
    )


# -- stream --------------------------------------------------------------------------------

class StreamTranslator:
    """Per-stream state: Anthropic events in, OpenAI chunks out.

    Text deltas become content deltas; each `tool_use` block becomes a tool call with its
    own `index` (the first delta carries id, type and name, later ones argument pieces);
    `message_delta` carries the finish reason, on its own chunk as OpenAI sends it.
    """

    def __init__(self, provider: str, model: str, include_usage: bool):
        self.provider = provider
        self.id = wire.new_completion_id()
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self.input_usage: dict[str, Any] = {}
        self.output_tokens = 0
        self.finished = False

    def _chunk(self, delta: dict[str, Any] | None = None, finish_reason: str | None = None) -> Chunk:
        return wire.chunk(self.id, self.model, self.created, delta=delta, finish_reason=finish_reason)

    def feed(self, event: str, data: dict[str, Any]) -> list[Chunk]:
        kind = data.get("type") or event
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            self.input_usage = message.get("usage") or {}
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[data.get("index", index)] = index
                return [self._chunk({"tool_calls": [{"index": index, "id": block.get("id", ""), "type": "function",
                                                     "function": {"name": block.get("name", ""), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                block_index = data.get("index")
                index = self.tool_index.get(block_index, 0) if isinstance(block_index, int) else 0
                return [self._chunk({"tool_calls": [{"index": index,
                                                     "function": {"arguments": delta.get("partial_json", "")}}]})]
            return []  # thinking and signature deltas have no OpenAI counterpart
        if kind == "message_delta":
            self.output_tokens = int((data.get("usage") or {}).get("output_tokens") or self.output_tokens)
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, STOP_REASONS.get(reason or "", "stop"))]
        if kind == "message_stop":
            self.finished = True
            if self.include_usage:
                usage = usage_from({**self.input_usage, "output_tokens": self.output_tokens}) or wire.usage(0, 0)
                return [wire.usage_chunk(self.id, self.model, self.created, usage)]
            return []
        if kind == "error":
            raise error_from_event(data, self.provider)
        return []  # ping, content_block_stop, and event types added later
