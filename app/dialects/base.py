"""What every dialect shares: upstream events passed through as they came, SSE framing,
and the per-stream writer protocol the relay drives. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from ..errors import GatewayError
from ..wire import Chunk


class NativeEvent(dict):
    """An upstream stream event in the client's own dialect, relayed unchanged (passthrough).

    A dict so that it travels the same streams as chat chunks; `event` is its SSE name."""

    def __init__(self, event: str | None, data: dict[str, Any]):
        super().__init__(data)
        self.event = event


# -- reading an upstream's answer, whatever it holds -------------------------------------------
# Upstreams are not always right: a count that is a string, tool calls that are not a list,
# content as a list of parts. A translator reads through these and never raises on them.


def count(value: Any) -> int:
    """A token count: a non-negative whole number, else 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return 0
    return int(min(value, 2**53))


def name_of(value: Any, default: str = "") -> str:
    """A reason or type name: the string, else `default` (a list is no table key)."""
    return value if isinstance(value, str) and value else default


def text_of(content: Any) -> str:
    """A message's text: the string, or the text parts of a list, joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def tool_calls_of(holder: Any) -> list[dict[str, Any]]:
    """A message's or a delta's tool calls that have the shape of one, each with a function
    and a whole-number index."""
    calls = holder.get("tool_calls") if isinstance(holder, dict) else None
    if not isinstance(calls, list):
        return []
    return [
        {
            **call,
            "index": call["index"] if isinstance(call.get("index"), int) else position,
            "function": call["function"] if isinstance(call.get("function"), dict) else {},
        }
        for position, call in enumerate(calls)
        if isinstance(call, dict)
    ]


def first_choice(chunk: Chunk) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(choice, delta) of a chunk's choice 0, the one answer a dialect carries; else none."""
    for choice in chunk.get("choices") or []:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = choice.get("delta")
            return [(choice, delta if isinstance(delta, dict) else {})]
    return []


def append_turn(turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], key: str) -> None:
    """Add `items` as a turn of `role`, merged into the last turn if it has the same role:
    Anthropic's and Gemini's conversations must alternate."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def frame(event: str | None, data: Any) -> bytes:
    """One SSE event; the Anthropic SDKs skip events that have no `event:` line."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


class StreamWriter(Protocol):
    """Per-stream state that turns the router's stream into the client's SSE bytes."""

    def write(self, chunk: Chunk) -> bytes:
        """The bytes for one chat chunk (or NativeEvent); may be empty."""

    def finish(self) -> bytes:
        """The closing bytes once the upstream really finished."""

    def fail(self, error: GatewayError, redact: Callable[[str], str]) -> bytes:
        """The in-band error that ends a stream whose headers are already out."""


class TranslatingWriter:
    """The skeleton both translating writers share: a passthrough event goes out as it
    came; a chat chunk opens the answer once, updates the usage, and hands choice 0's
    text, tool-call pieces and finish reason to the dialect's own hooks."""

    started = False
    passthrough = False

    def write(self, chunk: Chunk) -> bytes:
        if isinstance(chunk, NativeEvent):
            self.passthrough = True
            return frame(chunk.event or chunk.get("type"), chunk)
        out = b"" if self.started else self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage(chunk["usage"])
        for choice, delta in first_choice(chunk):
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._text(text)
            for call in tool_calls_of(delta):
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish_reason(name_of(choice["finish_reason"]))
        return out

    def _start(self) -> bytes:
        raise NotImplementedError

    def _usage(self, usage: dict[str, Any]) -> None:
        raise NotImplementedError

    def _text(self, text: str) -> bytes:
        raise NotImplementedError

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _finish_reason(self, reason: str) -> None:
        raise NotImplementedError


def json_arguments(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments (a JSON string in OpenAI's shape) as an object; junk becomes {}."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str) and arguments.strip():
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}
