"""The watchdog that bounds a request's waits with one timer (app/aio.py)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from app.aio import Watchdog


def _serving_loop():
    """The loop the gateway serves on here: uvloop, or on Windows its own (runtime/run.py)."""
    if sys.platform == "win32":
        from app.runtime.winloop import new_event_loop

        return new_event_loop
    import uvloop

    return uvloop.new_event_loop


def run(scenario, *, loop: str = "asyncio"):
    """Each scenario on asyncio's own loop and on the one the gateway serves on."""
    with asyncio.Runner(loop_factory=_serving_loop() if loop == "serving" else None) as runner:
        return runner.run(scenario())


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "serving"])


@LOOPS
def test_a_wait_that_outlasts_its_end_is_a_timeout(loop):
    async def scenario() -> float:
        watch = Watchdog()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await watch.wait(asyncio.sleep(5), watch.loop.time() + 0.1)
        watch.close()
        return time.monotonic() - started

    assert 0.09 <= run(scenario, loop=loop) < 2


@LOOPS
def test_many_waits_share_one_timer(loop, monkeypatch):
    async def scenario() -> tuple[int, list[int]]:
        watch = Watchdog()
        timers: list[float] = []
        call_at = watch.loop.call_at

        def counted(when, callback, *args, **kwargs):
            timers.append(when)
            return call_at(when, callback, *args, **kwargs)

        monkeypatch.setattr(watch.loop, "call_at", counted)
        got = [await watch.wait(asyncio.sleep(0, i), watch.loop.time() + 30) for i in range(200)]
        watch.close()
        return len(timers), got

    count, got = run(scenario, loop=loop)
    assert got == list(range(200))
    assert count == 1  # the first wait set it; the later ones end later, and only note it


@LOOPS
def test_a_wait_that_must_end_sooner_sets_the_timer_earlier(loop):
    async def scenario() -> float:
        watch = Watchdog()
        await watch.wait(asyncio.sleep(0), watch.loop.time() + 60)  # the timer is set 60 s out
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await watch.wait(asyncio.sleep(5), watch.loop.time() + 0.1)
        watch.close()
        return time.monotonic() - started

    assert run(scenario, loop=loop) < 2


@LOOPS
def test_the_timer_waits_on_when_it_fires_between_waits_and_before_a_later_end(loop):
    """The first wait sets the timer for its own end; a later wait that must end later is
    only bounded by that timer firing, seeing it is early, and setting itself again."""

    async def scenario() -> tuple[str, float]:
        watch = Watchdog()
        await watch.wait(asyncio.sleep(0), watch.loop.time() + 0.1)
        await asyncio.sleep(0.2)  # the timer fires with nothing waited for
        result = await watch.wait(asyncio.sleep(0.15, "slow but in time"), watch.loop.time() + 0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await watch.wait(asyncio.sleep(5), watch.loop.time() + 0.3)
        watch.close()
        return result, time.monotonic() - started

    result, waited = run(scenario, loop=loop)
    assert result == "slow but in time"
    assert 0.25 <= waited < 2


@LOOPS
def test_another_cancellation_stays_a_cancellation(loop):
    async def scenario() -> tuple[bool, int]:
        watch = Watchdog()

        async def waiter() -> None:
            await watch.wait(asyncio.sleep(5), watch.loop.time() + 60)

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.05)
        task.cancel()  # the client left
        try:
            await task
        except asyncio.CancelledError:
            cancelled = True
        else:
            cancelled = False
        watch.close()
        return cancelled, task.cancelling()

    assert run(scenario, loop=loop) == (True, 1)


@LOOPS
def test_a_cancellation_that_comes_with_the_timeout_wins(loop):
    """The client leaving in the same moment as the limit: it is not turned into a timeout
    (the relay would otherwise try to tell a client that is gone)."""

    async def scenario() -> str:
        watch = Watchdog()
        until = watch.loop.time() + 0.05

        async def waiter() -> str:
            try:
                await watch.wait(asyncio.sleep(5), until)
            except TimeoutError:
                return "timeout"
            return "finished"

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.01)
        # set after the watchdog's timer, for the same moment: both fire before the waiter runs
        watch.loop.call_at(until, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"
        finally:
            watch.close()

    assert run(scenario, loop=loop) == "cancelled"


@LOOPS
def test_a_wait_that_swallows_its_cancellation_still_ends_clean(loop):
    """An awaitable that catches the watchdog's cancellation and returns: its result stands,
    and the task carries no cancellation that would hit its next await."""

    async def scenario() -> tuple[str, int, str]:
        watch = Watchdog()

        async def stubborn() -> str:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                return "kept"
            return "slept"

        result = await watch.wait(stubborn(), watch.loop.time() + 0.05)
        left = asyncio.current_task().cancelling()
        after = await asyncio.sleep(0.01, "next await runs")
        watch.close()
        return result, left, after

    assert run(scenario, loop=loop) == ("kept", 0, "next await runs")


@LOOPS
def test_close_leaves_no_timer_holding_the_task(loop):
    async def scenario() -> tuple[int, int]:
        loop_ = asyncio.get_running_loop()
        watch = Watchdog()
        await watch.wait(asyncio.sleep(0), loop_.time() + 60)
        pending = watch._timer is not None
        watch.close()
        return int(pending), int(watch._timer is not None or watch._task is not None)

    assert run(scenario, loop=loop) == (1, 0)


@LOOPS
def test_a_wait_that_turns_its_cancellation_into_another_error_leaves_the_task_uncancelled(loop):
    """What is awaited catches the cancellation and raises its own error (an upstream
    read that maps it): that error goes on, and the task is not left marked as cancelled
    (code that asks `task.cancelling()` on the way out, as aiohttp's close does, would
    take it for a caller's cancellation)."""

    class ReadFailed(Exception):
        pass

    async def scenario() -> tuple[str, int]:
        watch = Watchdog()

        async def mapping() -> None:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                raise ReadFailed from None

        try:
            await watch.wait(mapping(), watch.loop.time() + 0.05)
        except ReadFailed:
            outcome = "read failed"
        else:
            outcome = "finished"
        watch.close()
        return outcome, asyncio.current_task().cancelling()

    assert run(scenario, loop=loop) == ("read failed", 0)


@LOOPS
def test_a_wait_whose_end_has_passed_and_one_after_it(loop):
    """The request's total time ran out while the relay wrote to a slow client: the next
    read's end is already past. Its data may be there already (the wait finishes without
    a turn of the loop, before the timer can fire), and the wait after it must still work
    (uvloop gives a plain handle, with no `when()`, for a time already past)."""

    async def ready(value: str) -> str:
        return value

    async def scenario() -> tuple[str, bool]:
        watch = Watchdog()
        past = watch.loop.time() - 1
        first = await watch.wait(ready("buffered"), past)
        try:
            await watch.wait(asyncio.sleep(5), past)
        except TimeoutError:
            timed_out = True
        else:
            timed_out = False
        watch.close()
        return first, timed_out

    assert run(scenario, loop=loop) == ("buffered", True)


@LOOPS
def test_what_calls_unwatched_is_not_cut_short(loop):
    """A finished answer's connection is wound up inside the wait for the stream's end:
    the wait's limit passing meanwhile does not turn a whole answer into a timeout."""
    from app.aio import unwatched

    async def winding_up() -> str:
        unwatched()
        await asyncio.sleep(0.15)  # past the wait's end
        return "wound up"

    async def scenario() -> str:
        watch = Watchdog()
        result = await watch.wait(winding_up(), watch.loop.time() + 0.05)
        watch.close()
        return result

    assert run(scenario, loop=loop) == "wound up"
