"""Clients that misbehave: slow headers and bodies, pipelining, crowds of idle
connections, disconnects at random points of every route. The gateway keeps serving
others throughout and keeps nothing afterwards.

    python -m pytest tests/hostile/test_client_chaos.py      (CHAOS_REQUESTS=2000 for more)
"""

from __future__ import annotations

import os
import random
import socket
import time

import httpx
import orjson
import pytest

from tests import rawhttp
from tests.gateway import GatewayProcess, write_config
from tests.support import openai_provider

pytestmark = pytest.mark.slow  # skipped by the quick loop (-m "not slow"); CI runs it

REQUESTS = int(os.environ.get("CHAOS_REQUESTS", "200"))


@pytest.fixture(scope="module")
def strict(tmp_path_factory, upstream):
    """A gateway that gives clients 2 s to send a request."""
    tmp = tmp_path_factory.mktemp("chaos")
    config = write_config(
        tmp,
        f"""
[server]
request_timeout = 2

[timeouts]
first_byte = 3

[providers.echo]
type = "echo"

{openai_provider("up", upstream.base_url)}""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp) as gw:
        yield gw


def served(gw) -> bool:
    return httpx.get(gw.url + "/health", timeout=5).status_code == 200


def fds(gw) -> int | None:
    return httpx.get(gw.url + "/admin/stats", timeout=5).json()["open_fds"]


def test_slow_headers_are_cut_off_and_do_not_block_others(strict):
    slow = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", strict.port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes
        slow.append(sock)
    assert served(strict)  # others are served while 50 clients dawdle
    time.sleep(2.5)
    for sock in slow:
        sock.settimeout(2)
        answer = sock.recv(4096)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:100]
        sock.close()


def test_slow_body_is_cut_off(strict):
    sock = socket.create_connection(("127.0.0.1", strict.port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"model":'
    )
    sock.settimeout(5)
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    # the rest of the body never came: the connection cannot carry another request, and
    # says so instead of leaving a client to wait on it
    assert b"connection: close" in answer.lower()
    assert sock.recv(4096) == b""
    sock.close()
    assert served(strict)


def test_pipelined_requests_are_answered_in_order(strict):
    one = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: first\r\n\r\n"
    two = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: second\r\n\r\n"
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(one + two)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 2
    assert data.index(b"x-request-id: first") < data.index(b"x-request-id: second")


def test_many_requests_on_one_keep_alive_connection(strict):
    with httpx.Client(base_url=strict.url, timeout=10) as http:
        for i in range(100):
            body = {"model": "echo", "messages": [{"role": "user", "content": f"n{i}"}]}
            assert http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"] == f"n{i}"


def test_hundreds_of_idle_connections(strict):
    before = fds(strict)
    idle = [socket.create_connection(("127.0.0.1", strict.port)) for _ in range(300)]
    try:
        assert served(strict)
        body = {"model": "echo", "messages": [{"role": "user", "content": "still here"}]}
        assert httpx.post(strict.url + "/v1/chat/completions", json=body, timeout=10).status_code == 200
    finally:
        for sock in idle:
            sock.close()
    if before is not None:
        deadline = time.monotonic() + 5
        while fds(strict) > before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fds(strict) <= before


ROUTES = [
    (
        "POST",
        "/v1/chat/completions",
        {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "a b c"}]},
    ),
    ("POST", "/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "a b c"}]}),
    (
        "POST",
        "/v1/chat/completions",
        {"model": "up/long-stream:chaos", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ),
    ("POST", "/v1/chat/completions", {"model": "up/slow-json:chaos", "messages": [{"role": "user", "content": "x"}]}),
    (
        "POST",
        "/v1/chat/completions",
        {"model": "up/hang-before-headers:chaos", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ),
    ("POST", "/v1/embeddings", {"model": "up/text-embedding-3-small", "input": "x"}),
    ("GET", "/v1/models", None),
    ("GET", "/health", None),
]


def _one(port: int, rng: random.Random) -> None:
    method, path, body = rng.choice(ROUTES)
    payload = orjson.dumps(body) if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
    )
    data = head + payload
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        cut = rng.choice([None, rng.randrange(1, len(data) + 1)])  # sometimes leave mid-request
        sock.sendall(data if cut is None else data[:cut])
        time.sleep(rng.random() * 0.1)
        if rng.random() < 0.5:
            sock.recv(rng.randint(1, 8192))
        rawhttp.leave(sock, rng.choice(["close", "reset", "half-close"]))
        sock.close()
    except OSError:
        pass


def test_disconnects_at_random_points_of_every_route(strict, upstream):
    before = fds(strict)
    rawhttp.storm(_one, strict.port, count=REQUESTS, seed=99)
    assert served(strict)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = httpx.get(strict.url + "/admin/stats", timeout=5).json()
        if stats["inflight_requests"] <= 1 and upstream.busy_connections == 0:
            break
        time.sleep(0.1)
    assert stats["inflight_requests"] <= 1  # only this stats request
    assert upstream.busy_connections == 0
    if before is not None:
        # everything but pooled idle upstream connections is gone
        assert stats["open_fds"] - upstream.open_connections <= before
