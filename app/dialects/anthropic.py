"""Anthropic Messages API <-> OpenAI chat completions. Pure: no I/O.

Names follow the direction of the conversion. Towards an Anthropic upstream (the
`anthropic` provider): `to_messages_request` (OpenAI request -> Anthropic),
`from_message` (Anthropic answer -> OpenAI completion), `StreamTranslator` (Anthropic
stream events -> OpenAI chunks). From an Anthropic client (`POST /v1/messages`):
`from_messages_request` (Anthropic request -> OpenAI), `to_message` (OpenAI completion ->
Anthropic answer), `MessagesWriter` (OpenAI chunks -> Anthropic stream events), and
`error_body` (any gateway error in Anthropic's shape).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from .. import wire
from ..errors import (
    GatewayError,
    InvalidRequest,
    UpstreamProtocolError,
    UpstreamStatusError,
    is_retryable_status,
)
from ..wire import Chunk, Completion
from .base import (
    TranslatingWriter,
    append_turn,
    count,
    frame,
    json_arguments,
    name_of,
    text_of,
    tool_calls_of,
)

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
            raise InvalidRequest(f"content part type '{kind}' is not supported by Anthropic models", param="messages")
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
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": function.get("name") or "",
                "input": parsed if isinstance(parsed, dict) else {},
            }
        )
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    append_turn(messages, role, blocks, "content")


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


def _split_conversation(chat_messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Chat messages as Anthropic's system text and its alternating user/assistant turns."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in chat_messages:
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
            _append(
                messages,
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id") or "",
                        "content": _text_of(content),
                    }
                ],
            )
    return system, messages


def _anthropic_tool(function: dict[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": function.get("name", "")}
    if function.get("description"):
        tool["description"] = function["description"]
    tool["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return tool


def to_messages_request(body: dict[str, Any], model: str, *, stream: bool, default_max_tokens: int) -> dict[str, Any]:
    """An OpenAI chat request as an Anthropic Messages request."""
    system, messages = _split_conversation(body.get("messages", []))
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
        out["tools"] = [_anthropic_tool(t["function"]) for t in tools if isinstance(t.get("function"), dict)]
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
    prompt = sum(
        count(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return wire.usage(prompt, count(usage.get("output_tokens")))


def from_message(message: dict[str, Any]) -> Completion:
    """An Anthropic Messages answer as an OpenAI chat completion."""
    if not isinstance(message.get("content"), list):
        raise UpstreamProtocolError("the Anthropic answer has no content list")
    text, calls = [], []
    for block in message["content"]:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input", {})).decode(),
                    },
                }
            )
    out: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        out["tool_calls"] = calls
    completion = wire.completion(
        message.get("id") or wire.new_completion_id(),
        message.get("model", ""),
        out,
        STOP_REASONS.get(name_of(message.get("stop_reason")), "stop"),
        usage_from(message.get("usage")),
    )
    return completion


def error_from_event(data: dict[str, Any], provider: str) -> UpstreamStatusError:
    error: dict[str, Any] = data["error"] if isinstance(data.get("error"), dict) else {}
    kind = error.get("type") or "api_error"
    status = ERROR_STATUS.get(kind, 500)
    return UpstreamStatusError(
        f"upstream '{provider}' failed mid-stream: {error.get('message') or kind}",
        status=502 if status >= 500 else status,
        code=kind,
        retryable=is_retryable_status(status),
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
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id", ""),
                                    "type": "function",
                                    "function": {"name": block.get("name", ""), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
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
                return [
                    self._chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json", "")}}]}
                    )
                ]
            return []  # thinking and signature deltas have no OpenAI counterpart
        if kind == "message_delta":
            usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
            self.output_tokens = count(usage.get("output_tokens")) or self.output_tokens
            change: dict[str, Any] = data["delta"] if isinstance(data.get("delta"), dict) else {}
            return [self._chunk({}, STOP_REASONS.get(name_of(change.get("stop_reason")), "stop"))]
        if kind == "message_stop":
            self.finished = True
            if self.include_usage:
                usage = usage_from({**self.input_usage, "output_tokens": self.output_tokens}) or wire.usage(0, 0)
                return [wire.usage_chunk(self.id, self.model, self.created, usage)]
            return []
        if kind == "error":
            raise error_from_event(data, self.provider)
        return []  # ping, content_block_stop, and event types added later


# == from an Anthropic client ====================================================================

# OpenAI finish reasons -> Anthropic stop reasons (the inverse of STOP_REASONS)
FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# the status of a gateway error -> Anthropic's error type for it
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(exc: GatewayError, redact: Callable[[str], str] = str) -> dict[str, Any]:
    """Anthropic's error shape: `{"type": "error", "error": {"type": ..., "message": ...}}`."""
    kind = _ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": redact(exc.message)}}


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _need(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise InvalidRequest(message, param=param)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"'{where}.source' must be an object", param=where)
    if source.get("type") == "base64":
        _need(
            isinstance(source.get("media_type"), str) and isinstance(source.get("data"), str),
            f"'{where}.source' needs 'media_type' and 'data'",
            where,
        )
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source.get("type") == "url":
        _need(isinstance(source.get("url"), str), f"'{where}.source.url' must be a string", where)
        url = source["url"]
    else:
        raise InvalidRequest(f"image source type '{source.get('type')}' is not supported", param=where)
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(content: Any) -> str:
    """A tool result as plain text: not every OpenAI-compatible server takes parts in a
    `tool` message (images in results have no chat counterpart and are left out)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return str(content)


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    _need(isinstance(system, list), "'system' must be a string or an array of text blocks", "system")
    return "\n\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict) and b.get("type") == "text")


def _user_turn(content: Any, where: str) -> list[dict[str, Any]]:
    """One Anthropic user turn: tool results become `tool` messages (first, as OpenAI wants them
    right after the assistant's calls), the rest one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, here))
        elif kind == "tool_result":
            text = _tool_result_text(block.get("content"))
            if block.get("is_error"):
                text = "Error: " + text
            out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text})
        else:
            raise InvalidRequest(f"content block type '{kind}' is not supported for this model", param=here)
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_turn(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text, calls = [], []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's own reasoning: other providers cannot take it back
        else:
            raise InvalidRequest(
                f"content block type '{kind}' is not supported in assistant turns", param=f"{where}.content[{j}]"
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _chat_tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """(OpenAI tool_choice, parallel_tool_calls) for an Anthropic tool_choice."""
    _need(isinstance(choice, dict), "'tool_choice' must be an object", "tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": str(choice.get("name", ""))}}, parallel
    raise InvalidRequest(f"tool_choice type '{kind}' is not supported", param="tool_choice")


def check_messages_request(body: dict[str, Any]) -> None:
    """The shape the translation relies on; Anthropic's own rules, with its messages."""
    _need(
        isinstance(body.get("model"), str) and bool(body["model"].strip()),
        "model: field required (a non-empty string)",
        "model",
    )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        _need(
            isinstance(message, dict) and message.get("role") in ("user", "assistant"),
            f"{where}.role: must be 'user' or 'assistant'",
            where,
        )
        content = message.get("content")
        _need(
            isinstance(content, str)
            or (
                isinstance(content, list)
                and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content)
            ),
            f"{where}.content: must be a string or an array of content blocks",
            where,
        )
    max_tokens = body.get("max_tokens")
    _need(
        max_tokens is None or (isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 1),
        "max_tokens: must be a positive integer",
        "max_tokens",
    )
    _need(body.get("stream") is None or isinstance(body["stream"], bool), "stream: must be a boolean", "stream")
    tools = body.get("tools")
    _need(
        tools is None or (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)),
        "tools: must be an array of objects",
        "tools",
    )
    stops = body.get("stop_sequences")
    _need(
        stops is None or (isinstance(stops, list) and all(isinstance(s, str) for s in stops)),
        "stop_sequences: must be an array of strings",
        "stop_sequences",
    )
    for key in ("temperature", "top_p"):
        value = body.get(key)
        _need(
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
            f"{key}: must be a number",
            key,
        )


def _chat_tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
        raise InvalidRequest(
            f"tool '{tool.get('name') or tool.get('type')}' is a server tool; only "
            "client tools with an input_schema can be translated",
            param=where,
        )
    function = {"name": str(tool.get("name", "")), "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    """max_tokens, temperature, top_p and stop sequences, under chat's names."""
    out = {key: body[key] for key in ("max_tokens", "temperature", "top_p") if body.get(key) is not None}
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    return out


def from_messages_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat request (checked first)."""
    check_messages_request(body)
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _system_text(body["system"])})
    for i, message in enumerate(body["messages"]):
        if message["role"] == "user":
            messages.extend(_user_turn(message["content"], f"messages.{i}"))
        else:
            messages.append(_assistant_turn(message["content"], f"messages.{i}"))
    out: dict[str, Any] = {"model": body["model"], "messages": messages, **_sampling(body)}
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # Anthropic streams always end with usage
    tools = body.get("tools")
    if tools:
        out["tools"] = [_chat_tool(tool, f"tools.{j}") for j, tool in enumerate(tools)]
    if body.get("tool_choice") is not None and tools:
        choice, parallel = _chat_tool_choice(body["tool_choice"])
        out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    return out


def anthropic_usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    return {
        "input_tokens": count(usage.get("prompt_tokens")),
        "output_tokens": count(usage.get("completion_tokens")),
    }


def to_message(completion: Completion, model: str) -> dict[str, Any]:
    """An OpenAI chat completion as an Anthropic Messages answer."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("the upstream's answer has no choices")
    message: dict[str, Any] = choices[0]["message"] if isinstance(choices[0].get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    if text_of(message.get("content")):
        content.append({"type": "text", "text": text_of(message.get("content"))})
    for call in tool_calls_of(message):
        function = call["function"]
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                "name": function.get("name", ""),
                "input": json_arguments(function.get("arguments")),
            }
        )
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_REASONS.get(name_of(choices[0].get("finish_reason"), "stop"), "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage")),
    }


class MessagesWriter(TranslatingWriter):
    """Per-stream state: OpenAI chunks in, Anthropic's event sequence out.

    `message_start`, then per content block `content_block_start`, its deltas and
    `content_block_stop` (blocks one after another, as Anthropic sends them), then
    `message_delta` with the stop reason and usage, and `message_stop`. A passthrough
    stream's events go out unchanged."""

    def __init__(self, model: str):
        self.model = model
        self.id = new_message_id()
        self.block = -1  # index of the last block started
        self.open: str | None = None  # "text" or "tool" while a block is open
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> block index
        self.stop_reason = "end_turn"
        self.usage = {"input_tokens": 0, "output_tokens": 0}

    def _start(self) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": dict(self.usage),
        }
        return frame("message_start", {"type": "message_start", "message": message}) + frame("ping", {"type": "ping"})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return frame("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.block += 1
        self.open = kind
        return out + frame(
            "content_block_start", {"type": "content_block_start", "index": self.block, "content_block": block}
        )

    def _usage(self, usage: dict[str, Any]) -> None:
        self.usage = anthropic_usage(usage)

    def _text(self, text: str) -> bytes:
        out = b"" if self.open == "text" else self._open("text", {"type": "text", "text": ""})
        return out + frame(
            "content_block_delta",
            {"type": "content_block_delta", "index": self.block, "delta": {"type": "text_delta", "text": text}},
        )

    def _finish_reason(self, reason: str) -> None:
        self.stop_reason = FINISH_REASONS.get(reason, "end_turn")

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self.tool_blocks:
            out += self._open(
                "tool",
                {
                    "type": "tool_use",
                    "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                    "name": function.get("name") or "",
                    "input": {},
                },
            )
            self.tool_blocks[index] = self.block
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += frame(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self.tool_blocks[index],
                    "delta": {"type": "input_json_delta", "partial_json": arguments},
                },
            )
        return out

    def finish(self) -> bytes:
        if self.passthrough:
            return b""  # the upstream's own message_stop already went out
        out = (b"" if self.started else self._start()) + self._close()
        out += frame(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                "usage": dict(self.usage),
            },
        )
        return out + frame("message_stop", {"type": "message_stop"})

    def fail(self, error: GatewayError, redact: Callable[[str], str]) -> bytes:
        return frame("error", error_body(error, redact))
