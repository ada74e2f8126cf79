"""One log line per request: who asked for what, who served it, how it went.

Never message content: only ids, names, numbers and the error's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from loguru import logger

from ..text import log_field


def _through_loguru(line: str) -> None:
    logger.bind(request=True).info(line)


def _unchanged(text: str) -> str:
    return text


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    path: str
    started: float
    model: str | None = None
    target: str | None = None
    stream: bool = False
    status: int | None = None
    first_byte_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 0
    disconnected: bool = False
    answered: bool = False  # the closing event went out: a client leaving after it did not disconnect
    error: str | None = None
    logged: bool = False

    #: where request lines go; the runtime points it at the log file's fast path
    sink: ClassVar[Callable[[str], None]] = _through_loguru
    #: masks secrets in the fields a client or an upstream chose (the runtime sets it to
    #: the redactor's memo: the same few model names and paths come back all the time)
    redact: ClassVar[Callable[[str], str]] = _unchanged
    #: told of every finished request with its latency in ms (the status page's ring)
    finished: ClassVar[Callable[[RequestRecord, float], None] | None] = None

    @classmethod
    def start(cls, request_id: str, method: str, path: str) -> RequestRecord:
        return cls(request_id, method, path, time.perf_counter())

    def attempting(self, target: str, attempt: int) -> None:
        """The router is trying `target` (attempt number `attempt` of this request)."""
        self.target, self.attempts = target, attempt

    def mark_first_byte(self) -> None:
        if self.first_byte_ms is None:
            self.first_byte_ms = (time.perf_counter() - self.started) * 1000

    def observe_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if prompt is None and completion is None:  # Anthropic's and the Responses API's names
                prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
            if isinstance(prompt, int):
                self.prompt_tokens = prompt
            if isinstance(completion, int):
                self.completion_tokens = completion

    def log(self) -> None:
        """Write the line once; later calls are no-ops (several layers may try)."""
        if self.logged:
            return
        self.logged = True
        latency = (time.perf_counter() - self.started) * 1000
        # everything a client or an upstream chose (path, model, and the target and error
        # that name it) is masked and goes through one sanitiser: no value can leak a
        # secret, forge a line or pose as another field. The id is ours, or a client's of
        # plain characters and nothing secret-looking (see request_id); the rest are numbers.
        redact = RequestRecord.redact
        fields = [
            f"id={self.request_id}",
            f"{log_field(self.method, 20)} {log_field(redact(self.path))}",
            f"status={self.status if self.status is not None else '-'}",
            f"ms={latency:.1f}",
        ]
        if self.model is not None:
            fields.append(f"model={log_field(redact(self.model))}")
        if self.target is not None:
            fields.append(f"target={log_field(redact(self.target))}")
        if self.stream:
            fields.append("stream=1")
        if self.first_byte_ms is not None:
            fields.append(f"ttfb_ms={self.first_byte_ms:.1f}")
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            fields.append(f"tokens={self.prompt_tokens or 0}+{self.completion_tokens or 0}")
        if self.attempts > 1:
            fields.append(f"attempts={self.attempts}")
        fields.append(f"disconnected={'yes' if self.disconnected else 'no'}")
        if self.error:
            fields.append(f"error={log_field(redact(self.error), 500)}")
        RequestRecord.sink("request " + " ".join(fields))
        if RequestRecord.finished is not None:
            RequestRecord.finished(self, latency)
