"""asyncio helpers every layer may use. No gateway knowledge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish(cleanup: Awaitable[T]) -> T:
    """Await `cleanup` to its end even if the caller is cancelled meanwhile, then re-raise.

    Sanic cancels a handler twice when its client goes away (the failed write, then the
    lost connection). Closing an upstream response is an await; a second cancellation
    landing inside it would abort the close half-way and leave the upstream request
    running and its pooled connection checked out for good. So the cleanup runs as a
    task of its own, shielded from the caller's cancellations, and the caller waits for
    it however often it is cancelled, and is cancelled afterwards."""
    task = asyncio.ensure_future(cleanup)
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
