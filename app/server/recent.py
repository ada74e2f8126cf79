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
    def __init__(self, size: int = 50):
        self._ring: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, record: RequestRecord, latency_ms: float) -> None:
        if record.path in NOT_RECORDED:
            return
        finished = time.time()
        tokens = None
        if record.prompt_tokens is not None or record.completion_tokens is not None:
            tokens = {"prompt": record.prompt_tokens, "completion": record.completion_tokens}
        self._ring.append(
            {
                "time": dt.datetime.fromtimestamp(finished - latency_ms / 1000, dt.UTC).isoformat(
                    timespec="milliseconds"
                ),
                "request_id": record.request_id,
                "method": record.method,
                "path": record.path,
                "model": record.model,
                "target": record.target,
                "stream": record.stream,
                "status": record.status,
                "ms": round(latency_ms, 1),
                "ttfb_ms": round(record.first_byte_ms, 1) if record.first_byte_ms is not None else None,
                "tokens": tokens,
                "client_left": record.disconnected,
                "error": record.error,
            }
        )

    def newest_first(self) -> list[dict[str, Any]]:
        return list(reversed(self._ring))
