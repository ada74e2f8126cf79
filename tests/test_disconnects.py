"""A client that leaves, at any point, cancels the upstream at once, and nothing leaks.

Proven from the upstream's side: its connection is closed before its answer was done.
"""

from __future__ import annotations

import random
import sys
import time
import uuid

import httpx
import pytest

from tests import rawhttp
from tests.support import wait_for_request

pytestmark = pytest.mark.usefixtures("leak_guard")


def chat(model: str, stream: bool) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("how", ["close", "reset", "half-close"])
@pytest.mark.parametrize("path", ["waiting-first-byte", "mid-stream", "non-stream"])
def test_client_leaving_cancels_the_upstream(gateway, upstream, path, how):
    key = f"{path}:{how}:{uuid.uuid4().hex[:8]}"
    scenario, stream = {
        "waiting-first-byte": ("hang-before-headers", True),
        "mid-stream": ("long-stream", True),
        "non-stream": ("slow-json", False),
    }[path]
    model = f"{scenario}:{key}"
    request_id = "dc-" + uuid.uuid4().hex
    sock = rawhttp.post(
        gateway.port, "/v1/chat/completions", chat(f"up/{model}", stream), headers={"x-request-id": request_id}
    )
    seen = wait_for_request(upstream, model)
    if path == "mid-stream":
        assert b"data: " in rawhttp.read_until(sock, b"data: ")
    rawhttp.leave(sock, how)
    assert seen.peer_closed.wait(1.0), "the upstream connection outlived the client"
    assert not seen.completed.is_set()
    line = gateway.log_line_for(request_id)
    assert "disconnected=yes" in line
    if how == "half-close":
        sock.close()


def _storm_one(port: int, rng: random.Random) -> None:
    scenario, stream = rng.choice(
        [
            ("text", True),
            ("text", False),
            ("long-stream", True),
            ("slow-drip", True),
            ("hang-before-headers", True),
            ("slow-json", False),
            ("echo", True),
        ]
    )
    model = "echo" if scenario == "echo" else f"up/{scenario}:storm"
    try:
        sock = rawhttp.post(port, "/v1/chat/completions", chat(model, stream))
        time.sleep(rng.random() * 0.15)
        if rng.random() < 0.5:
            sock.recv(rng.randint(1, 4096))
        rawhttp.leave(sock, rng.choice(["close", "reset", "close"]))
    except OSError:
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc")
def test_disconnect_storm_leaves_nothing_behind(gateway, upstream):
    def settled_fds() -> int:
        # every upstream connection the gateway holds is one fd; the rest must not grow
        return gateway.fd_count() - upstream.open_connections

    httpx.get(gateway.url + "/health")
    time.sleep(0.3)
    baseline = settled_fds()
    rawhttp.storm(_storm_one, gateway.port, count=300, seed=1234)

    assert httpx.get(gateway.url + "/health", timeout=5).json()["status"] == "ok"
    deadline = time.monotonic() + 10
    while settled_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert settled_fds() <= baseline, f"fds grew from {baseline} to {settled_fds()}"
