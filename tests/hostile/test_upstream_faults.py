"""The upstream fault matrix: every way an upstream can misbehave, each with the outcome
the client must see (a real status before the headers, or one in-band error after), and a
healthy gateway afterwards.

    python -m pytest tests/hostile/test_upstream_faults.py
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests import rawhttp
from tests.support import wait_for_request

pytestmark = pytest.mark.usefixtures("leak_guard")

TRANSCRIPT_TEXT = "Hello! 你好 👋 line\u2028sep"

# (fault, model, stream, expected): expected is ("status", code), ("in-band", error code) or ("text", text)
MATRIX = [
    ("refused connection", "dead-model", True, ("status", 502)),
    ("refused connection, non-stream", "dead-model", False, ("status", 502)),
    ("accept then silence", "up/hang-before-headers", True, ("status", 504)),
    ("accept then silence, non-stream", "up/hang-before-headers", False, ("status", 504)),
    ("headers then silence", "up/headers-then-silence", True, ("status", 504)),
    ("headers then silence, non-stream", "up/headers-then-silence", False, ("status", 504)),
    ("silence mid-stream", "up/hang-mid-stream", True, ("in-band", "upstream_timeout")),
    ("reset before headers", "up/reset-before-headers", True, ("status", 502)),
    ("reset before headers, non-stream", "up/reset-before-headers", False, ("status", 502)),
    ("reset mid-stream", "up/reset-mid-stream", True, ("in-band", "upstream_protocol_error")),
    ("close without [DONE]", "up/no-done", True, ("in-band", "upstream_protocol_error")),
    ("malformed SSE line", "up/malformed", True, ("in-band", "upstream_protocol_error")),
    ("error event mid-stream", "up/error-event", True, ("in-band", "upstream_error")),
    ("invalid UTF-8 split across reads", "up/bad-utf8-split", True, ("text", "ok 你 bad \ufffd end")),
    ("a single 10 MB line", "up/huge-line", True, ("text", "x" * (10 * 1024 * 1024))),
    ("1 byte per 10 ms", "up/byte-drip:10", True, ("text", "drip")),
    # the first event needs 8 s at this pace: past first_byte (3 s here), so the gateway gives up
    ("1 byte per 100 ms", "up/byte-drip:100", True, ("status", 504)),
    ("gzip-encoded SSE", "up/gzip-sse", True, ("text", TRANSCRIPT_TEXT)),
    ("SSE as text/plain", "up/text-plain-sse", True, ("status", 502)),
    ("HTML with status 200", "up/html-200", True, ("status", 502)),
    ("HTML error page", "up/error-html", False, ("status", 502)),
    ("empty 503", "up/error-503", False, ("status", 502)),
    ("500 with JSON", "up/error-500", True, ("status", 502)),
    ("503 with retry-after", "up/503-retry-after", False, ("status", 502)),
    ("429 with retry-after", "up/rate-limit", True, ("status", 429)),
    ("429 without retry-after", "up/429-no-retry-after", False, ("status", 429)),
    ("redirect", "up/redirect", False, ("status", 502)),
    ("Anthropic overloaded", "claude/overloaded", True, ("status", 502)),
    ("Anthropic error event", "claude/error-midstream", True, ("in-band", "overloaded_error")),
]


def ask(gateway, model: str, stream: bool) -> tuple[int, dict[str, str], str]:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=30) as response:
        return response.status_code, dict(response.headers), response.read().decode()


def streamed_text(raw: str) -> tuple[str, dict | None, bool]:
    text, error, done = "", None, False
    for event in raw.split("\n\n"):
        if event == "data: [DONE]":
            done = True
        elif event.startswith("data: "):
            payload = json.loads(event[6:])
            if "error" in payload:
                error = payload["error"]
            for choice in payload.get("choices", []):
                text += choice["delta"].get("content") or ""
    return text, error, done


@pytest.mark.parametrize("fault, model, stream, expected", MATRIX, ids=[m[0] for m in MATRIX])
def test_upstream_fault(gateway, fault, model, stream, expected):
    status, headers, raw = ask(gateway, model, stream)
    kind, value = expected
    if kind == "status":
        assert status == value, raw[:300]
        error = json.loads(raw)["error"]
        assert error["message"] and error["type"]
        assert headers.get("x-should-retry") == "false"
    else:
        assert status == 200
        text, error, done = streamed_text(raw)
        if kind == "in-band":
            assert error is not None and error["code"] == value and not done
        else:
            assert text == value and done and error is None
    assert httpx.get(gateway.url + "/health", timeout=5).json()["status"] == "ok"


def test_upstream_answering_after_the_client_left(gateway, upstream):
    sock = rawhttp.post(
        gateway.port,
        "/v1/chat/completions",
        {"model": "up/late-answer:gone", "messages": [{"role": "user", "content": "x"}]},
    )
    seen = wait_for_request(upstream, "late-answer:gone")
    rawhttp.abort(sock)
    assert seen.peer_closed.wait(1)
    time.sleep(1.2)  # the upstream's answer would have come by now
    assert httpx.get(gateway.url + "/health", timeout=5).json()["status"] == "ok"


@pytest.mark.parametrize("model", ["up/huge-json", "up/endless-line", "claude/endless-line"])
def test_an_upstream_that_never_stops_sending_cannot_take_the_memory(gateway, model):
    """One event without end, or a whole answer of 300 MB: refused past a bound (and the
    upstream connection closed), not held in memory."""
    before = httpx.get(gateway.url + "/admin/stats", timeout=5).json()["rss_mb"]
    reply = httpx.post(
        gateway.url + "/v1/chat/completions",
        timeout=60,
        json={"model": model, "stream": "json" not in model, "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 502, reply.text[:300]
    assert reply.json()["error"]["code"] == "upstream_protocol_error"
    after = httpx.get(gateway.url + "/admin/stats", timeout=5).json()["rss_mb"]
    if before is not None and after is not None:
        assert after - before < 120, (before, after)  # the bounds are 16 MB a line, 64 MB a body


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/responses"])
def test_an_odd_completion_is_translated_not_a_500(gateway, route):
    """Counts that are strings, tool calls that are not a list, content as parts: a
    translator reads through them (the text survives) instead of failing as a gateway bug."""
    body = {"model": "up/odd-completion", "max_tokens": 50}
    if route == "/v1/messages":
        body["messages"] = [{"role": "user", "content": "x"}]
    else:
        body["input"] = "x"
    reply = httpx.post(gateway.url + route, json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    assert "list content" in reply.text
