"""The recent Responses of this process, for `previous_response_id`.

Bounded by count and by bytes, least recently used out first: a long-running sidecar
must not grow with its conversations. Nothing survives a restart; a forgotten id is a
clear 404, as OpenAI answers for an unknown one.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from ..errors import NotFound


class ResponseStore:
    def __init__(self, max_entries: int = 1000, max_bytes: int = 64 * 2**20):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[list[dict[str, Any]], int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, response_id: str, history: list[dict[str, Any]]) -> None:
        """Keep the conversation up to and including `response_id`'s answer."""
        size = len(orjson.dumps(history))
        if size > self.max_bytes:
            return  # larger than the whole store: keeping it would evict everything else
        self._drop(response_id)
        self._entries[response_id] = (history, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def get(self, response_id: str) -> list[dict[str, Any]]:
        """The conversation of a stored response; NotFound when it is unknown or evicted."""
        entry = self._entries.get(response_id)
        if entry is None:
            raise NotFound(
                f"Previous response with id '{response_id}' not found: this gateway keeps only the recent "
                "responses of its current run (created with store not false)",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        self._entries.move_to_end(response_id)
        return entry[0]

    def _drop(self, response_id: str) -> None:
        entry = self._entries.pop(response_id, None)
        if entry is not None:
            self.bytes -= entry[1]
