"""asyncio helpers every layer may use. No gateway knowledge."""

from __future__ import annotations

import asyncio
import contextvars
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
