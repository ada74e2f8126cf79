"""Bytes no client library would send: each gets the right status in the OpenAI error shape,
a sane log line, no traceback, and the gateway keeps serving.

Run against two gateways: one with a token (a parse error must not turn into 401) and one
without (an oversized head is 431, not "body too large").
"""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import orjson
import pytest

from tests import rawhttp
from tests.gateway import GatewayProcess, write_config
from tests.support import openai_provider

TOKEN = "tok-broken-http-0123456789"
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()


@pytest.fixture(scope="module", params=["token", "no-token"])
def gw(request, tmp_path_factory, upstream):
    tmp = tmp_path_factory.mktemp(f"broken-{request.param}")
    config = write_config(
        tmp,
        f"""
[server]
request_timeout = 2

[retry]
attempts = 1

[providers.echo]
type = "echo"

{openai_provider("up", upstream.base_url)}
[providers.claude]
type = "anthropic"
base_url = "{upstream.root_url}"
models = ["claude-*"]
""",
    )
    env = {"AI_GATEWAY_TOKEN": TOKEN} if request.param == "token" else {}
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp, env=env) as gateway:
        gateway.auth = AUTH if request.param == "token" else b""
        yield gateway


def head(method: bytes, target: bytes, *lines: bytes) -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\n" + b"".join(line + b"\r\n" for line in lines if line)


def post(gw, body: bytes, *framing: bytes) -> bytes:
    """A chat request with the token, its body framed as `framing` says."""
    head_ = head(
        b"POST", b"/v1/chat/completions", b"Host: 127.0.0.1", gw.auth.rstrip(b"\r\n"), b"Content-Type: application/json"
    )
    return head_ + b"".join(line + b"\r\n" for line in framing) + b"\r\n" + body


def post_json(gw, body: bytes, *extra: bytes) -> bytes:
    return post(gw, body, b"Content-Length: %d" % len(body), *extra)


def chunked_post(gw, body: bytes) -> bytes:
    return post(gw, body, b"Transfer-Encoding: chunked")


def chat(model: str, messages: list) -> bytes:
    return orjson.dumps({"model": model, "messages": messages})


def deep(levels: int) -> bytes:
    return (
        b'{"model":"up/echo-body","messages":[{"role":"user","content":"x"}],"metadata":{"x":'
        + b"[" * levels
        + b"]" * levels
        + b"}}"
    )


# name -> (request bytes, given the gateway; the status it must get)
CASES = {
    "duplicate content-length": (
        lambda gw: (
            head(
                b"POST",
                b"/v1/chat/completions",
                b"Host: 127.0.0.1",
                gw.auth.rstrip(b"\r\n"),
                b"Content-Type: application/json",
                b"Content-Length: 2",
                b"Content-Length: 2",
            )
            + b"\r\n{}"
        ),
        400,
    ),
    "content-length and chunked": (
        lambda gw: (
            head(
                b"POST",
                b"/v1/chat/completions",
                b"Host: 127.0.0.1",
                gw.auth.rstrip(b"\r\n"),
                b"Content-Type: application/json",
                b"Content-Length: 2",
                b"Transfer-Encoding: chunked",
            )
            + b"\r\n{}"
        ),
        400,
    ),
    # chunked bodies whose framing lies: answered at once, not at the body's deadline
    "a chunk longer than its size line": (lambda gw: chunked_post(gw, b"3\r\nabcdef\r\n0\r\n\r\n"), 400),
    "a chunk size beyond 2**64": (lambda gw: chunked_post(gw, b"ffffffffffffffffff\r\n{}\r\n0\r\n\r\n"), 413),
    "a chunk of 64 MB declared": (lambda gw: chunked_post(gw, b"4000000\r\n{}"), 413),
    "a target in absolute form (a proxy request)": (
        lambda gw: head(b"GET", b"http://evil.example/health", b"Host: 127.0.0.1", gw.auth.rstrip(b"\r\n")) + b"\r\n",
        400,
    ),
    "a 9 KB header": (
        lambda gw: (
            head(b"GET", b"/health", b"Host: 127.0.0.1", gw.auth.rstrip(b"\r\n"), b"X-Big: " + b"a" * 9000) + b"\r\n"
        ),
        431,
    ),
    "0xff in Host": (
        lambda gw: head(b"GET", b"/health", b"Host: 127.0.0.\xff", gw.auth.rstrip(b"\r\n")) + b"\r\n",
        403,
    ),
    "0xff in Origin": (
        lambda gw: (
            head(b"GET", b"/v1/models", b"Host: 127.0.0.1", b"Origin: http://\xff", gw.auth.rstrip(b"\r\n")) + b"\r\n"
        ),
        403,
    ),
    "0xff in Content-Type": (
        lambda gw: (
            head(
                b"POST",
                b"/v1/chat/completions",
                b"Host: 127.0.0.1",
                gw.auth.rstrip(b"\r\n"),
                b"Content-Type: application/js\xffon",
                b"Content-Length: 2",
            )
            + b"\r\n{}"
        ),
        415,
    ),
    "ESC in the request target": (
        lambda gw: head(b"GET", b"/he\x1b[31mlth", b"Host: 127.0.0.1", gw.auth.rstrip(b"\r\n")) + b"\r\n",
        400,
    ),
    "CONNECT": (
        lambda gw: head(b"CONNECT", b"127.0.0.1:443", b"Host: 127.0.0.1", gw.auth.rstrip(b"\r\n")) + b"\r\n",
        400,
    ),
    "JSON nested 300 deep": (lambda gw: post_json(gw, deep(300)), 400),
    "malformed tool_calls": (
        lambda gw: post_json(
            gw,
            chat("claude/text", [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": {"id": "a"}}]),
        ),
        400,
    ),
    "tool call without a function": (
        lambda gw: post_json(
            gw,
            chat(
                "claude/text",
                [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "a", "function": 3}]}],
            ),
        ),
        400,
    ),
    "two Host headers": (
        lambda gw: (
            head(b"GET", b"/health", b"Host: localhost", b"Host: evil.example", gw.auth.rstrip(b"\r\n")) + b"\r\n"
        ),
        400,
    ),
    "a role that is an array": (lambda gw: post_json(gw, chat("up/text", [{"role": [], "content": "x"}])), 400),
    "a role that is an object": (lambda gw: post_json(gw, chat("up/text", [{"role": {}, "content": "x"}])), 400),
    "list-valued system text": (
        lambda gw: post_json(
            gw,
            chat(
                "claude/text",
                [
                    {"role": "system", "content": [{"type": "text", "text": ["a", "b"]}]},
                    {"role": "user", "content": "x"},
                ],
            ),
        ),
        400,
    ),
    "a 100 KB model name": (
        lambda gw: post_json(gw, chat("up/" + "m" * 100_000, [{"role": "user", "content": "x"}])),
        400,
    ),
}


def status_and_body(raw: bytes) -> tuple[int, dict]:
    head_, _, body = raw.partition(b"\r\n\r\n")
    assert head_.startswith(b"HTTP/1.1 "), raw[:200]
    return int(head_.split(b" ", 2)[1]), orjson.loads(body)


@pytest.mark.parametrize("name", list(CASES))
def test_broken_http_gets_its_status(gw, name):
    make, expected = CASES[name]
    raw = rawhttp.send_raw(gw.port, make(gw), timeout=5)
    assert raw, "the connection was dropped instead of answered"
    status, body = status_and_body(raw)
    assert status == expected, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(gw.url + "/health", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert "Traceback" not in gw.stderr()


def test_a_valid_token_still_works_with_invalid_utf8_around_it(gw):
    raw = rawhttp.send_raw(
        gw.port,
        head(b"GET", b"/health", b"Host: 127.0.0.1", b"Authorization: Bearer \xff\xfe" + TOKEN.encode()) + b"\r\n",
    )
    status, body = status_and_body(raw)
    assert status == (401 if gw.auth else 200), body


def test_a_client_that_leaves_with_half_sent_headers_is_logged_as_gone(gw):
    rid = "half-" + uuid.uuid4().hex
    sock = socket.create_connection(("127.0.0.1", gw.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: " + rid.encode() + b"\r\n")
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and "status=500" not in gw.log_text()[-2000:]:
        time.sleep(0.1)
    tail = gw.log_text().splitlines()[-3:]
    assert not any("status=500" in line for line in tail), tail


def test_headers_dripping_a_byte_at_a_time_are_cut_at_the_deadline(gw):
    """Sanic restarts its request timer on every byte; a deadline must not move."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    started = time.monotonic()
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    closed_after = None
    try:
        for byte in request:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
            if time.monotonic() - started > 8:
                break
    except OSError:
        closed_after = time.monotonic() - started
    if closed_after is None:
        sock.settimeout(3)
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        closed_after = time.monotonic() - started
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
    sock.close()
    assert closed_after < 6, f"a 2 s header deadline held the connection {closed_after:.1f} s"


def test_no_response_carries_an_empty_alt_svc_header(gw):
    headers = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=gw.url, headers=headers, timeout=10) as client:
        assert "alt-svc" not in client.get("/health").headers
        assert "alt-svc" not in client.get("/nowhere").headers
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        ) as reply:
            assert reply.status_code == 200 and "alt-svc" not in reply.headers
            reply.read()
