"""Clients that leave while the gateway cannot run: paused (SIGSTOP) or starved of CPU.

When the gateway resumes, Sanic sees the failed write and the lost connection at once and
cancels the handler twice, while its cleanup (closing the upstream response, returning the
pooled connection) is still awaiting. Counted from the upstream's side: every upstream
request must end, the pool must be free, and fresh requests must be served.

    python -m pytest tests/hostile/test_paused_disconnects.py     (PAUSED_STREAMS=1000 for more)
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import uuid

import httpx
import orjson
import pytest

from tests import rawhttp
from tests.gateway import GatewayProcess, write_config
from tests.support import openai_provider, wait_until

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP/SIGCONT are POSIX"),
    pytest.mark.slow,
]

STREAMS = int(os.environ.get("PAUSED_STREAMS", "200"))
BATCH = 25


@pytest.fixture(scope="module")
def paused_gw(tmp_path_factory, upstream):
    tmp = tmp_path_factory.mktemp("paused")
    config = write_config(
        tmp,
        f"""
[timeouts]
first_byte = 5
idle = 5
heartbeat = 0

[retry]
attempts = 1

{openai_provider("up", upstream.base_url)}
[providers.claude]
type = "anthropic"
base_url = "{upstream.root_url}"
models = ["claude-*"]
""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp) as gw:
        yield gw


def open_streams(gw: GatewayProcess, model: str, count: int) -> list[socket.socket]:
    """`count` streams, each read until its first event has arrived."""
    socks = []
    for _ in range(count):
        sock = rawhttp.post(
            gw.port,
            "/v1/chat/completions",
            {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        )
        socks.append(sock)
    for sock in socks:
        assert b"data: " in rawhttp.read_until(sock, b"data: ")
    return socks


def upstream_left_open(upstream, tag: str) -> int:
    """Upstream requests of `tag` whose connection the gateway has not closed."""
    return sum(not s.peer_closed.is_set() for s in upstream.requests_for(tag))


def pool_state(gw: GatewayProcess) -> dict:
    return httpx.get(gw.url + "/admin/stats", timeout=5).json()["upstream_pool"]


def still_served(gw: GatewayProcess) -> None:
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        reply = client.post(
            "/v1/chat/completions", json={"model": "up/text", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert reply.status_code == 200, reply.text
        health = client.get("/health").json()
        assert health["status"] == "ok", health


def close_while_paused(gw: GatewayProcess, socks: list[socket.socket], *, reset: bool) -> None:
    os.kill(gw.pid, signal.SIGSTOP)
    try:
        time.sleep(0.05)  # the upstream keeps writing; the gateway reads nothing
        for sock in socks:
            rawhttp.leave(sock, "reset" if reset else "close")
    finally:
        os.kill(gw.pid, signal.SIGCONT)


@pytest.mark.parametrize("provider", ["up", "claude"])
def test_streams_closed_while_the_gateway_is_paused_end_their_upstream(paused_gw, upstream, provider):
    """Deterministic: every client leaves while the gateway is stopped, then it resumes."""
    model = "endless"
    total = 0
    for batch in range(max(1, STREAMS // BATCH)):
        tag = f"{model}:{uuid.uuid4().hex[:8]}"
        socks = open_streams(paused_gw, f"{provider}/{tag}", BATCH)
        try:
            # this batch's own upstream requests (the upstream is shared: other requests
            # may start or end meanwhile)
            assert upstream_left_open(upstream, tag) == BATCH
        except AssertionError:
            for sock in socks:
                sock.close()
            raise
        close_while_paused(paused_gw, socks, reset=batch % 2 == 1)
        total += BATCH
        assert wait_until(lambda t=tag: upstream_left_open(upstream, t) == 0, 5), (
            f"after {total} streams: {upstream_left_open(upstream, tag)} upstream requests outlived their clients"
        )
    assert wait_until(lambda: pool_state(paused_gw)["active"] == 0, 5), pool_state(paused_gw)
    still_served(paused_gw)


def test_streams_closed_while_the_gateway_is_starved_end_their_upstream(paused_gw, upstream):
    """The same under CPU starvation: the gateway gets a sliver of a core while clients leave."""
    tag = f"endless:{uuid.uuid4().hex[:8]}"
    socks = open_streams(paused_gw, f"up/{tag}", 50)
    stop = threading.Event()

    def starve() -> None:  # 2 ms of run time in every 20 ms
        while not stop.is_set():
            os.kill(paused_gw.pid, signal.SIGSTOP)
            time.sleep(0.018)
            os.kill(paused_gw.pid, signal.SIGCONT)
            time.sleep(0.002)

    thread = threading.Thread(target=starve, daemon=True)
    thread.start()
    try:
        for sock in socks:
            rawhttp.leave(sock, "close")
            time.sleep(0.005)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(5)
        os.kill(paused_gw.pid, signal.SIGCONT)
    assert wait_until(lambda: upstream_left_open(upstream, tag) == 0, 5), (
        f"{upstream_left_open(upstream, tag)} upstream requests outlived their clients"
    )
    assert wait_until(lambda: pool_state(paused_gw)["active"] == 0, 5), pool_state(paused_gw)
    still_served(paused_gw)


def test_health_reports_an_exhausted_pool(tmp_path_factory, upstream):
    """When no upstream request can get a connection, /health must not say ok."""
    tmp = tmp_path_factory.mktemp("exhausted")
    config = write_config(
        tmp,
        f"""
[server]
upstream_connections = 2

[timeouts]
connect = 1
heartbeat = 0

{openai_provider("up", upstream.base_url)}""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp) as gw:
        assert httpx.get(gw.url + "/health").json()["status"] == "ok"
        socks = open_streams(gw, f"up/endless:{uuid.uuid4().hex[:8]}", 2)
        try:
            health = httpx.get(gw.url + "/health")
            body = health.json()
            assert health.status_code == 503, body
            assert body["status"] == "degraded"
            assert body["upstream_pool"]["active"] == 2
            assert body["upstream_pool"]["free"] == 0
            # the limit holds: a third upstream request waits for a connection
            third = rawhttp.post(
                gw.port,
                "/v1/chat/completions",
                {"model": "up/text", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            )
            socks.append(third)
            assert wait_until(lambda: httpx.get(gw.url + "/admin/stats").json()["upstream_pool"]["waiting"] >= 1, 5)
            assert httpx.get(gw.url + "/admin/stats").json()["upstream_pool"]["active"] == 2
        finally:
            for sock in socks:
                sock.close()
        assert wait_until(lambda: httpx.get(gw.url + "/health").status_code == 200, 5)
        assert orjson.loads(httpx.get(gw.url + "/health").content)["upstream_pool"]["active"] == 0
