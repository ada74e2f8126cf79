"""The last finished requests, for the status page: a bounded ring the request log feeds.

Holds what a request's log line holds (never message content), as plain values.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from typing import Any

from .accounting import RequestRecord

#: requests of the status page itself would crowd out the app's own
NOT_RECORDED = frozenset({"/", "/admin/status"})


class RecentRequests:
    """Keeps each request as a tuple; the dicts (and the timestamps as text) are made only
    when the status page asks, not on every request."""

    def __init__(self, size: int = 50):
        self._ring: deque[tuple[Any, ...]] = deque(maxlen=size)

    def add(self, record: RequestRecord, latency_ms: float) -> None:
        if record.path in NOT_RECORDED:
            return
        self._ring.append(
            (
                time.time() - latency_ms / 1000,
                latency_ms,
                record.request_id,
                record.method,
                record.path,
                record.model,
                record.target,
                record.stream,
                record.status,
                record.first_byte_ms,
                record.prompt_tokens,
                record.completion_tokens,
                record.disconnected,
                record.error,
            )
        )

    def newest_first(self) -> list[dict[str, Any]]:
        return [_entry(*kept) for kept in reversed(self._ring)]


def _entry(
    started: float,
    latency_ms: float,
    request_id: str,
    method: str,
    path: str,
    model: str | None,
    target: str | None,
    stream: bool,
    status: int | None,
    first_byte_ms: float | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    disconnected: bool,
    error: str | None,
) -> dict[str, Any]:
    tokens = None
    if prompt_tokens is not None or completion_tokens is not None:
        tokens = {"prompt": prompt_tokens, "completion": completion_tokens}
    return {
        "time": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="milliseconds"),
        "request_id": request_id,
        "method": method,
        "path": path,
        "model": model,
        "target": target,
        "stream": stream,
        "status": status,
        "ms": round(latency_ms, 1),
        "ttfb_ms": round(first_byte_ms, 1) if first_byte_ms is not None else None,
        "tokens": tokens,
        "client_left": disconnected,
        "error": error,
    }
