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
