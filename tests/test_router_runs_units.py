"""The router over fake providers: retries, fallbacks, cooldowns, deadlines, and never a
retry once the first chunk is out. Sleeping is injected, so nothing here waits."""

from __future__ import annotations

import asyncio

import pytest

from app.config import ProviderSettings, RetrySettings, Timeouts
from app.errors import UpstreamRateLimited, UpstreamStatusError, UpstreamTimeout, UpstreamUnreachable
from app.providers.base import Provider
from app.routing.policy import Cooldowns, RetryPolicy
from app.routing.router import Router
from app.routing.table import RoutingTable


class Scripted(Provider):
    """Answers each call with the next item of its script: an exception or a reply."""

    def __init__(self, name: str, script: list):
        super().__init__(ProviderSettings(name=name, type="openai", models=("*",)))
        self.script = list(script)
        self.calls = 0

    def _next(self):
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, Exception):
            raise step
        return step

    async def complete(self, body, model):
        step = self._next()
        if step == "hang":
            await asyncio.sleep(3600)
        return {"served_by": self.name}

    async def stream(self, body, model):
        step = self._next()
        if step == "hang":
            await asyncio.sleep(3600)
        yield {"choices": [{"index": 0, "delta": {"content": self.name}}]}
        if step == "break-after-first":
            raise UpstreamUnreachable("connection lost mid-stream")
        if step == "stall-after-first":
            await asyncio.sleep(3600)


def make_router(providers: dict[str, Scripted], aliases=None, attempts=2, timeouts=Timeouts(), cooldown_after=0):
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    settings = [p.settings for p in providers.values()]
    router = Router(
        RoutingTable(settings, aliases or {}),
        providers,
        RetryPolicy(RetrySettings(attempts=attempts, backoff_initial=1.0, backoff_max=8.0), rng=lambda: 1.0),
        Cooldowns(cooldown_after, 60),
        timeouts,
        sleep=sleep,
    )
    return router, sleeps


def run(coro):
    return asyncio.run(coro)


async def read_through(router: Router, model: str) -> None:
    """Opens a stream of `model` and reads it to its end (or its error); always closes it."""
    stream = await router.open_stream({"model": model})
    try:
        async for _ in stream:
            pass
    finally:
        await stream.aclose()


def test_retries_then_falls_back_in_order():
    a = Scripted("a", [UpstreamUnreachable("down"), UpstreamUnreachable("down")])
    b = Scripted("b", [])
    router, sleeps = make_router({"a": a, "b": b}, {"chain": ["a/m", "b/m"]})
    served = run(router.complete({"model": "chain"}))
    assert served.value == {"served_by": "b"} and served.target.label == "b/m" and served.attempts == 3
    assert a.calls == 2 and b.calls == 1
    assert sleeps == [1.0]  # one backoff between a's two tries, none before moving on


def test_retry_after_is_waited_for():
    a = Scripted("a", [UpstreamRateLimited("slow down", retry_after=3.0)])
    router, sleeps = make_router({"a": a})
    assert run(router.complete({"model": "a/m"})).attempts == 2
    assert sleeps == [3.0]


def test_a_client_error_is_not_retried_and_is_what_the_client_gets():
    a = Scripted("a", [UpstreamStatusError("bad temperature", status=400)])
    b = Scripted("b", [])
    router, _ = make_router({"a": a, "b": b}, {"chain": ["a/m", "b/m"]})
    served = run(router.complete({"model": "chain"}))
    assert served.target.label == "b/m" and a.calls == 1  # the next target may accept it


def test_when_all_fail_the_last_error_is_raised_with_its_target():
    a = Scripted("a", [UpstreamUnreachable("a down")] * 2)
    b = Scripted("b", [UpstreamStatusError("b broke", status=502)] * 2)
    router, _ = make_router({"a": a, "b": b}, {"chain": ["a/m", "b/m"]})
    with pytest.raises(UpstreamStatusError) as info:
        run(router.complete({"model": "chain"}))
    assert info.value.message == "b broke" and info.value.target == "b/m"


def test_no_retry_once_the_first_chunk_is_out():
    a = Scripted("a", ["break-after-first"])
    router, _ = make_router({"a": a}, attempts=3)

    with pytest.raises(UpstreamUnreachable) as info:
        run(read_through(router, "a/m"))
    assert a.calls == 1 and info.value.target == "a/m"


def test_failure_before_the_first_chunk_is_retried():
    a = Scripted("a", [UpstreamUnreachable("down"), "ok"])
    router, _ = make_router({"a": a})

    async def first_chunk():
        stream = await router.open_stream({"model": "a/m"})
        try:
            return await anext(aiter(stream))
        finally:
            await stream.aclose()

    assert run(first_chunk())["choices"][0]["delta"]["content"] == "a" and a.calls == 2


def test_first_byte_timeout_then_fallback():
    a = Scripted("a", ["hang", "hang"])
    b = Scripted("b", [])
    router, _ = make_router({"a": a, "b": b}, {"chain": ["a/m", "b/m"]}, attempts=1, timeouts=Timeouts(first_byte=0.05))
    assert run(router.complete({"model": "chain"})).target.label == "b/m"


def test_idle_timeout_mid_stream_is_final():
    a = Scripted("a", ["stall-after-first"])
    router, _ = make_router({"a": a}, timeouts=Timeouts(idle=0.05))

    with pytest.raises(UpstreamTimeout):
        run(read_through(router, "a/m"))
    assert a.calls == 1


def test_a_cooling_target_is_skipped_while_another_is_left():
    a = Scripted("a", [UpstreamUnreachable("down")] * 10)
    b = Scripted("b", [])
    router, _ = make_router({"a": a, "b": b}, {"chain": ["a/m", "b/m"]}, attempts=1, cooldown_after=1)
    run(router.complete({"model": "chain"}))
    assert a.calls == 1
    run(router.complete({"model": "chain"}))
    assert a.calls == 1 and b.calls == 2  # a is cooling down: not even tried


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_do_not_cool_a_target_down(status):
    """Three malformed requests in a row say nothing about the target's health."""
    a = Scripted("a", [UpstreamStatusError("bad request", status=status)] * 3)
    b = Scripted("b", [])
    router, _ = make_router({"a": a, "b": b}, {"chain": ["a/m", "b/m"]}, attempts=1, cooldown_after=3)
    for _ in range(3):
        run(router.complete({"model": "chain"}))
    assert a.calls == 3
    run(router.complete({"model": "chain"}))
    assert a.calls == 4  # still tried first


def test_an_upstreams_answer_beats_a_later_connection_failure():
    a = Scripted("a", [UpstreamStatusError("model not found at a", status=404)])
    b = Scripted("b", [UpstreamUnreachable("b down")] * 2)
    router, _ = make_router({"a": a, "b": b}, {"chain": ["a/m", "b/m"]})
    with pytest.raises(UpstreamStatusError) as info:
        run(router.complete({"model": "chain"}))
    assert info.value.status == 404 and info.value.target == "a/m"


def test_a_retry_after_longer_than_the_time_left_is_not_waited_for():
    """total = 1 s and the upstream asks for 3 s: the gateway answers with the upstream's
    429 at once, instead of waiting past the request's limit and asking again."""
    a = Scripted("a", [UpstreamRateLimited("slow down", retry_after=3.0)] * 2)
    router, sleeps = make_router({"a": a}, timeouts=Timeouts(total=1.0))
    with pytest.raises(UpstreamRateLimited):
        run(router.complete({"model": "a/m"}))
    assert sleeps == [] and a.calls == 1


def test_no_target_is_tried_once_the_total_time_ran_out_and_the_error_says_so():
    """The first target used up the request's total time: the next one is not asked (it
    would time out at once and take the blame), and the error names the total, not
    first_byte."""
    a = Scripted("a", ["hang"])
    b = Scripted("b", [])
    router, _ = make_router(
        {"a": a, "b": b}, {"chain": ["a/m", "b/m"]}, attempts=1, timeouts=Timeouts(first_byte=5, total=0.1)
    )
    with pytest.raises(UpstreamTimeout) as info:
        run(router.complete({"model": "chain"}))
    assert b.calls == 0 and info.value.target == "a/m"
    assert "total time (0.1 s)" in info.value.message


@pytest.mark.parametrize(
    "timeouts, says",
    [(Timeouts(idle=0.05), "went silent mid-stream for 0.05 s"), (Timeouts(idle=5, total=0.1), "total time (0.1 s)")],
)
def test_a_stream_cut_short_names_the_limit_that_cut_it(timeouts, says):
    a = Scripted("a", ["stall-after-first"])
    router, _ = make_router({"a": a}, timeouts=timeouts)

    with pytest.raises(UpstreamTimeout) as info:
        run(read_through(router, "a/m"))
    assert says in info.value.message
