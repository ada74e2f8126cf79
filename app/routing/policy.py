"""Retry, backoff and cooldown decisions. Pure: the clock and the randomness are injected."""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import RetrySettings
from ..errors import UpstreamError


@dataclass
class RetryPolicy:
    settings: RetrySettings
    rng: Callable[[], float] = random.random

    def delay(self, attempt: int, error: UpstreamError) -> float | None:
        """Seconds to wait before trying the same target again after `attempt` failed
        tries, or None to give up on that target (and move to the next one)."""
        if not error.retryable or attempt >= self.settings.attempts:
            return None
        if error.retry_after is not None:
            # waiting longer than the cap would stall the user; the next target may answer now
            if error.retry_after > self.settings.retry_after_max:
                return None
            return error.retry_after
        base = min(self.settings.backoff_max, self.settings.backoff_initial * 2 ** (attempt - 1))
        # "equal jitter": half fixed, half random, so that clients do not retry in lockstep
        return base / 2 + base / 2 * self.rng()


@dataclass
class Cooldowns:
    """A target that failed `after` times in a row is skipped for `seconds`.

    Targets are named by clients (`provider/<anything>`), so the bookkeeping is bounded:
    past `capacity` targets the least recently failed one is forgotten."""

    after: int
    seconds: float
    clock: Callable[[], float] = time.monotonic
    capacity: int = 1024
    _failures: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _until: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def available(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return True
        if self.clock() >= until:
            del self._until[key]
            return True
        return False

    def failed(self, key: str) -> None:
        if self.after <= 0:
            return
        count = self._failures.pop(key, 0) + 1
        if count >= self.after:
            self._until.pop(key, None)
            self._until[key] = self.clock() + self.seconds
            _bound(self._until, self.capacity)
        else:
            self._failures[key] = count
            _bound(self._failures, self.capacity)

    def __len__(self) -> int:
        """Targets remembered (failing or cooling down)."""
        return len(self._failures) + len(self._until)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
        self._until.pop(key, None)


def _bound(entries: OrderedDict[str, Any], capacity: int) -> None:
    while len(entries) > capacity:
        entries.popitem(last=False)
