"""Bad input gets a clear 4xx OpenAI error; never a 5xx, never a dropped connection."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests import rawhttp

pytestmark = pytest.mark.usefixtures("leak_guard")

CHAT = "/v1/chat/completions"
OK_MESSAGES = [{"role": "user", "content": "hi"}]


def body(**fields) -> bytes:
    base = {"model": "echo", "messages": OK_MESSAGES}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


CASES = [
    # (name, method, path, content, content type, expected status, expected param or None)
    ("invalid json", "POST", CHAT, b'{"model": "echo",', "application/json", 400, None),
    ("invalid utf-8", "POST", CHAT, b'{"model": "ec\xff\xfeho", "messages": []}', "application/json", 400, None),
    (
        "lone surrogate escape",
        "POST",
        CHAT,
        b'{"model": "\\ud800", "messages": [{"role":"user","content":"x"}]}',
        "application/json",
        400,
        None,
    ),
    ("empty body", "POST", CHAT, b"", "application/json", 400, None),
    ("json array", "POST", CHAT, b"[]", "application/json", 400, None),
    ("json string", "POST", CHAT, b'"hello"', "application/json", 400, None),
    ("json null", "POST", CHAT, b"null", "application/json", 400, None),
    ("model missing", "POST", CHAT, body(model=...), "application/json", 400, "model"),
    ("model not a string", "POST", CHAT, body(model=42), "application/json", 400, "model"),
    ("model empty", "POST", CHAT, body(model=""), "application/json", 400, "model"),
    ("model unknown", "POST", CHAT, body(model="nope-123"), "application/json", 404, "model"),
    ("messages missing", "POST", CHAT, body(messages=...), "application/json", 400, "messages"),
    ("messages empty", "POST", CHAT, body(messages=[]), "application/json", 400, "messages"),
    ("messages an object", "POST", CHAT, body(messages={"role": "user"}), "application/json", 400, "messages"),
    ("message not an object", "POST", CHAT, body(messages=["hi"]), "application/json", 400, "messages[0]"),
    (
        "role unknown",
        "POST",
        CHAT,
        body(messages=[{"role": "wizard", "content": "x"}]),
        "application/json",
        400,
        "messages[0].role",
    ),
    (
        "content a number",
        "POST",
        CHAT,
        body(messages=[{"role": "user", "content": 5}]),
        "application/json",
        400,
        "messages[0].content",
    ),
    (
        "content part without type",
        "POST",
        CHAT,
        body(messages=[{"role": "user", "content": [{"text": "x"}]}]),
        "application/json",
        400,
        "messages[0].content[0]",
    ),
    ("stream a string", "POST", CHAT, body(stream="yes"), "application/json", 400, "stream"),
    (
        "stream_options a list",
        "POST",
        CHAT,
        body(stream=True, stream_options=[1]),
        "application/json",
        400,
        "stream_options",
    ),
    ("max_tokens negative", "POST", CHAT, body(max_tokens=-1), "application/json", 400, "max_tokens"),
    ("max_tokens a string", "POST", CHAT, body(max_tokens="10"), "application/json", 400, "max_tokens"),
    ("max_tokens a bool", "POST", CHAT, body(max_tokens=True), "application/json", 400, "max_tokens"),
    ("temperature a string", "POST", CHAT, body(temperature="hot"), "application/json", 400, "temperature"),
    ("tools an object", "POST", CHAT, body(tools={"a": 1}), "application/json", 400, "tools"),
    (
        "deeply nested",
        "POST",
        CHAT,
        b'{"model":"echo","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "application/json",
        400,
        None,
    ),
    (
        "too large",
        "POST",
        CHAT,
        b'{"model":"echo","pad":"' + b"a" * (2 * 1024 * 1024) + b'"}',
        "application/json",
        413,
        None,
    ),
    ("form body", "POST", CHAT, b"model=echo", "application/x-www-form-urlencoded", 415, None),
    ("text body", "POST", CHAT, body(), "text/plain", 415, None),
    ("no content type", "POST", CHAT, body(), "", 415, None),
    ("GET on chat", "GET", CHAT, b"", "", 405, None),
    ("DELETE on health", "DELETE", "/health", b"", "", 405, None),
    ("unknown route", "GET", "/v2/anything", b"", "", 404, None),
    ("legacy completions", "POST", "/v1/completions", body(), "application/json", 404, None),
    (
        "embeddings without input",
        "POST",
        "/v1/embeddings",
        orjson.dumps({"model": "echo"}),
        "application/json",
        400,
        "input",
    ),
    (
        "embeddings input a number",
        "POST",
        "/v1/embeddings",
        orjson.dumps({"model": "echo", "input": 3}),
        "application/json",
        400,
        "input",
    ),
]


@pytest.mark.parametrize("name, method, path, content, ctype, status, param", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_an_openai_error(gateway, name, method, path, content, ctype, status, param):
    headers = {"content-type": ctype} if ctype else {}
    response = httpx.request(method, gateway.url + path, content=content, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    assert "code" in error and "param" in error
    if param is not None:
        assert error["param"] == param
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n",
        b"GET /health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
    ],
    ids=["not http", "bad content-length", "bad header line", "bad version"],
)
def test_malformed_http_is_answered_not_dropped(gateway, raw):
    answer = rawhttp.send_raw(gateway.port, raw)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), answer[:200]


def test_still_serving_after_all_that(client):
    reply = client.chat.completions.create(model="echo", messages=OK_MESSAGES)
    assert reply.choices[0].message.content == "hi"
