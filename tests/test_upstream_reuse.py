"""A finished stream gives its upstream connection back for the next request.

An SSE stream's last event comes before the end of its chunked encoding; a gateway that
stops reading at `[DONE]` (or Anthropic's `message_stop`) leaves the body incomplete, and
the connection is closed instead of reused: against a remote API, every streamed request
would pay a new TCP and TLS handshake. The upstream here sends the end of the body 20 ms
after the last event, as a network would."""

from __future__ import annotations

import time

import pytest

from tests.support import collect, wait_until

STREAMS = 5


@pytest.mark.parametrize("model", ["up/slow-end", "claude/slow-end"])
def test_streams_one_after_another_reuse_one_upstream_connection(client, upstream, model):
    before = upstream.accepted_connections
    for _ in range(STREAMS):
        stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
        assert collect(stream)[0]
    # one new connection at most (the pool may hold an idle one from before)
    assert upstream.accepted_connections - before <= 1, upstream.accepted_connections - before


def test_a_body_that_never_ends_after_done_costs_the_client_nothing_and_is_closed(client, upstream):
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="up/never-ends", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert collect(stream)[0] and time.monotonic() - started < 3  # the wait for the rest is bounded
    seen = upstream.requests_for("never-ends")[-1]
    assert seen.peer_closed.wait(5), "the connection of an incomplete body was kept"
    assert wait_until(lambda: upstream.busy_connections == 0, 5)
