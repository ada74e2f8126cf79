"""Runs a plan: tries the targets of a model in order, with retries, until one answers.

Retries and fallbacks happen only before the first byte reaches the client: a stream is
handed over once its first chunk is in hand, and from then on any failure is final.
Deadlines live here too, the same for every provider: the first chunk (or the whole
non-streamed answer) within `first_byte`, then each chunk within `idle` of the last,
everything within `total`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from loguru import logger

from ..aio import Watchdog, finish
from ..config import Timeouts
from ..errors import InvalidRequest, UpstreamError, UpstreamStatusError, UpstreamTimeout
from ..providers.base import Provider
from ..sse import StreamItem
from .policy import Cooldowns, RetryPolicy
from .table import RoutingTable, Target

T = TypeVar("T")
#: told (target label, attempt number) before each attempt
Observer = Callable[[str, int], None]


@dataclass
class Served(Generic[T]):
    target: Target
    value: T
    attempts: int


class Deadline(Watchdog):
    """The request's overall limit (`total`, 0 = none) combined with per-wait limits, all
    kept by one timer (see `Watchdog`): a stream waits once per socket read."""

    def __init__(self, total: float):
        super().__init__()
        self.total = total
        self.end = self.loop.time() + total if total > 0 else None

    def within(self, seconds: float) -> float:
        """The loop time `seconds` from now, or the overall end if that comes first."""
        at = self.loop.time() + seconds
        return at if self.end is None else min(at, self.end)

    def allows(self, seconds: float) -> bool:
        """Whether waiting `seconds` from now still ends before the overall end."""
        return self.end is None or self.loop.time() + seconds < self.end - self.SLACK

    @property
    def ran_out(self) -> bool:
        """The overall end has come: what timed out did so because of `total`."""
        return not self.allows(0)

    def wait_for(self, awaitable: Awaitable[T], seconds: float) -> Coroutine[Any, Any, T]:
        """`awaitable`, or TimeoutError after `seconds` or at the overall end, to await
        (not a coroutine of its own: one layer less on every read of a stream)."""
        return self.wait(awaitable, self.within(seconds))


class OpenStream:
    """An upstream stream whose first chunk has arrived. Iterate it once; always `aclose()`."""

    def __init__(
        self,
        target: Target,
        first: StreamItem,
        rest: AsyncGenerator[StreamItem, None],
        idle: float,
        deadline: Deadline,
        attempts: int,
    ):
        self.target = target
        self.attempts = attempts
        self._first: StreamItem | None = first
        self._rest = rest
        self._idle = idle
        self._deadline = deadline
        self._ended = False
        self._iterator = self._chunks()

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._iterator

    async def _chunks(self) -> AsyncIterator[StreamItem]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while True:
            try:
                chunk = await self._deadline.wait_for(anext(self._rest), self._idle)
            except StopAsyncIteration:
                self._ended = True
                self._deadline.close()
                return
            except TimeoutError:
                if self._deadline.ran_out:
                    why = f"was cut at the request's total time ({self._deadline.total:g} s)"
                else:
                    why = f"went silent mid-stream for {self._idle:g} s"
                err = UpstreamTimeout(f"upstream '{self.target.provider}' {why}")
                err.target = self.target.label
                raise err from None
            except UpstreamError as exc:
                exc.target = self.target.label
                raise
            yield chunk

    async def run_out(self) -> None:
        """Reads what is left once the answer's last event has gone to the client: only the
        end of the upstream's body (see `Framed.final`), so that the stream finishes on its
        own and its connection is reused. The answer is complete: a failure here changes
        nothing for the client, and leaves the stream to `aclose()`."""
        with contextlib.suppress(Exception):
            async for _ in self._iterator:
                pass

    @property
    def ended(self) -> bool:
        """The upstream stream ran to its end: it has closed itself, nothing is left to close."""
        return self._ended

    async def aclose(self) -> None:
        self._deadline.close()
        if not self._ended:
            await finish(self._rest.aclose())


class Router:
    def __init__(
        self,
        table: RoutingTable,
        providers: Mapping[str, Provider],
        policy: RetryPolicy,
        cooldowns: Cooldowns,
        timeouts: Timeouts,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.table = table
        self.providers = providers
        self.policy = policy
        self.cooldowns = cooldowns
        self.timeouts = timeouts
        self._sleep = sleep

    async def complete(self, body: dict[str, Any], observe: Observer | None = None) -> Served[dict[str, Any]]:
        return await self._answer(body, lambda provider, model: provider.complete(body, model), observe)

    async def embeddings(self, body: dict[str, Any], observe: Observer | None = None) -> Served[dict[str, Any]]:
        return await self._answer(body, lambda provider, model: provider.embeddings(body, model), observe)

    async def answer(
        self,
        body: dict[str, Any],
        call: Callable[[Provider, str], Awaitable[dict[str, Any]]],
        observe: Observer | None = None,
    ) -> Served[dict[str, Any]]:
        """A whole answer from `call(provider, upstream_model)` for each target tried in turn
        (other dialects use it: the call knows what to ask each kind of provider)."""
        return await self._answer(body, call, observe)

    async def _answer(
        self, body: dict[str, Any], call: Callable[[Provider, str], Awaitable[dict[str, Any]]], observe: Observer | None
    ) -> Served[dict[str, Any]]:
        """A whole answer: its arrival is the first byte, so `first_byte` bounds it."""
        deadline = Deadline(self.timeouts.total)

        async def attempt(provider: Provider, target: Target) -> dict[str, Any]:
            return await deadline.wait_for(call(provider, target.model), self.timeouts.first_byte)

        try:
            return await self._run(body, attempt, deadline, observe)
        finally:
            deadline.close()

    async def open_stream(
        self,
        body: dict[str, Any],
        observe: Observer | None = None,
        *,
        open_: Callable[[Provider, str], AsyncGenerator[StreamItem, None]] | None = None,
    ) -> OpenStream:
        """The first target's stream that yields a chunk; `open_(provider, upstream_model)`
        replaces `provider.stream(body, ...)` for other dialects."""
        deadline = Deadline(self.timeouts.total)

        async def attempt(provider: Provider, target: Target) -> tuple[StreamItem, AsyncGenerator[StreamItem, None]]:
            chunks = open_(provider, target.model) if open_ else provider.stream(body, target.model)
            try:
                first = await deadline.wait_for(anext(chunks), self.timeouts.first_byte)
            except StopAsyncIteration:
                raise UpstreamTimeout(f"upstream '{target.provider}' finished without sending anything") from None
            except BaseException:
                await finish(chunks.aclose())
                raise
            return first, chunks

        try:
            served = await self._run(body, attempt, deadline, observe)
        except BaseException:
            deadline.close()
            raise
        first, rest = served.value
        return OpenStream(served.target, first, rest, self.timeouts.idle, deadline, served.attempts)

    async def _run(
        self,
        body: dict[str, Any],
        attempt: Callable[[Provider, Target], Awaitable[T]],
        deadline: Deadline,
        observe: Observer | None = None,
    ) -> Served[T]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' must be a non-empty string", param="model")
        targets = self.table.resolve(model)
        # skip targets that are cooling down, unless that would leave nothing to try
        ready = [t for t in targets if self.cooldowns.available(t.label)] or targets
        last_error: UpstreamError | None = None
        last_answer: UpstreamStatusError | None = None  # an upstream's own refusal says more
        attempts = 0
        for target in ready:
            if attempts and deadline.ran_out:
                break  # no time is left to try another target
            provider = self.providers[target.provider]
            tries = 0
            while True:
                tries += 1
                attempts += 1
                if observe is not None:  # the request's log line names the target even if all fails
                    observe(target.label, attempts)
                try:
                    value = await attempt(provider, target)
                except TimeoutError:
                    error: UpstreamError = self._no_answer(target, deadline)
                except UpstreamError as exc:
                    error = exc
                else:
                    self.cooldowns.succeeded(target.label)
                    return Served(target, value, attempts)
                error.target = target.label
                last_error = error
                if isinstance(error, UpstreamStatusError):
                    last_answer = error
                if error.retryable:  # a request the upstream refused says nothing of its health
                    self.cooldowns.failed(target.label)
                delay, note = self._retry_delay(tries, error, deadline)
                logger.bind(target=target.label).info("upstream attempt {} failed: {}{}", attempts, error.message, note)
                if delay is None:
                    break
                await self._sleep(delay)
        # the last meaningful error: what an upstream answered beats "could not reach it"
        final = last_answer or last_error
        assert final is not None
        raise final

    def _no_answer(self, target: Target, deadline: Deadline) -> UpstreamTimeout:
        """The error for an attempt that timed out, naming the limit that ended it."""
        if deadline.ran_out:
            return UpstreamTimeout(
                f"upstream '{target.provider}' did not answer within the request's total time ({deadline.total:g} s)"
            )
        return UpstreamTimeout(f"upstream '{target.provider}' did not answer within {self.timeouts.first_byte:g} s")

    def _retry_delay(self, tries: int, error: UpstreamError, deadline: Deadline) -> tuple[float | None, str]:
        """How long to wait before trying the target again (None: not again), and what
        the log says of it. A wait the request's total time would not outlive (a long
        `retry-after`) is not made."""
        delay = self.policy.delay(tries, error)
        if delay is None:
            return None, ""
        if not deadline.allows(delay):
            return None, "; no retry: the request's total time would run out first"
        return delay, f"; retrying in {delay:.2f} s"

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
