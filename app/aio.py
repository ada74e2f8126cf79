"""asyncio helpers every layer may use. No gateway knowledge."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: in the task that finish() runs, that very task (other tasks it starts inherit the
#: variable, not the protection: they compare unequal)
_finishing: contextvars.ContextVar[list[asyncio.Future | None] | None] = contextvars.ContextVar(
    "finishing", default=None
)


async def finish(cleanup: Awaitable[T]) -> T:
    """Await `cleanup` to its end even if the caller is cancelled meanwhile, then re-raise.

    Sanic cancels a handler twice when its client goes away (the failed write, then the
    lost connection). Closing an upstream response is an await; a second cancellation
    landing inside it would abort the close half-way and leave the upstream request
    running and its pooled connection checked out for good. So the cleanup runs as a
    task of its own, shielded from the caller's cancellations, and the caller waits for
    it however often it is cancelled, and is cancelled afterwards."""
    running = _finishing.get()
    if running is not None and running[0] is asyncio.current_task():
        # already inside a cleanup that finish() runs as its own shielded task: no
        # cancellation of the caller's reaches here, so another task gains nothing
        return await cleanup
    mine: list[asyncio.Future | None] = [None]
    token = _finishing.set(mine)
    try:
        task = asyncio.ensure_future(cleanup)  # a task copies the context when created
    finally:
        _finishing.reset(token)
    mine[0] = task
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True  # ours, or the cleanup's own (the loop is closing): wait on
        except BaseException:
            break  # the cleanup failed: its error is raised below
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: a cancellation outranks a failed cleanup
        raise asyncio.CancelledError
    return task.result()


class Watchdog:
    """Time limits on one task's waits, kept by a single timer however many waits it has.

    `asyncio.timeout()` makes and cancels a timer, and an object, for every wait: for a
    stream that is every socket read, about 3% of a streamed request's CPU under load
    (bench/profile.py). Here a wait
    only notes when it must end. The timer is set for the first wait; when it fires
    before the wait in progress must end (or while nothing is waited for), it is set
    again for that end, or left unset until the next wait. A wait whose end comes before
    the timer's sets it earlier. Cancelling the task when a wait runs out, and telling
    that from any other cancellation, works as in `asyncio.timeout()`.

    `close()` when the waits are over: the timer holds the task until it fires."""

    #: a timer may fire this much early: asyncio's loops run a timer up to the clock's
    #: resolution early (15.6 ms on Windows), uvloop's count in milliseconds
    SLACK = max(0.001, time.get_clock_info("monotonic").resolution)

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._task: asyncio.Task | None = None
        self._until: float | None = None  # the end of the wait in progress
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0  # when the timer fires
        self._expired = False

    async def wait(self, awaitable: Awaitable[T], until: float) -> T:
        """`await awaitable`, or TimeoutError once the loop's clock has reached `until`
        (unless what it runs calls `unwatched()` first)."""
        task = asyncio.current_task()
        assert task is not None, "a wait runs in a task"
        cancelling = task.cancelling()
        self._task, self._until, self._expired = task, until, False
        watching = _watching.set(self)
        timer = self._timer
        if timer is None or self._timer_at > until:
            if timer is not None:
                timer.cancel()
            # (the handle's own `when()` is not there to ask: for a time already past,
            # uvloop returns a plain handle, run at the next turn)
            self._timer, self._timer_at = self.loop.call_at(until, self._due), until
        try:
            result = await awaitable
        except BaseException as exc:
            _watching.reset(watching)
            self._until = None
            # the cancellation the timer asked for is taken back however the wait ended
            if self._expired and task.uncancel() <= cancelling and isinstance(exc, asyncio.CancelledError):
                raise TimeoutError from None  # ours, and nobody else's since
            raise
        _watching.reset(watching)
        self._until = None
        if self._expired:  # ran out, and finished all the same
            task.uncancel()
        return result

    def _due(self) -> None:
        self._timer = None
        until = self._until
        if until is None or self._task is None:
            return  # nothing waited for: the next wait sets the timer
        if self.loop.time() + self.SLACK < until:
            self._timer, self._timer_at = self.loop.call_at(until, self._due), until
        else:
            self._expired = True
            self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._until = self._task = None


#: the watchdog whose wait the running task is in (see `unwatched`)
_watching: contextvars.ContextVar[Watchdog | None] = contextvars.ContextVar("watching", default=None)


def unwatched() -> None:
    """What the running task does from here to the end of its wait is bounded on its own:
    the wait in progress (`Watchdog.wait`) no longer runs out. For the winding up of work
    that is done: the answer is complete, and only the end of its connection is read."""
    watchdog = _watching.get()
    if watchdog is not None and not watchdog._expired:
        watchdog._until = None
