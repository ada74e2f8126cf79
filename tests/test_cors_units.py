"""The CORS answers of the guard, as a table: pure functions, no process."""

from __future__ import annotations

import pytest

from app.errors import Forbidden
from app.server.guard import Guard, requested_header_names


@pytest.mark.parametrize(
    ("requested", "names"),
    [
        (None, []),
        ("", []),
        ("authorization,content-type,user-agent", ["authorization", "content-type", "user-agent"]),
        (" Authorization , X-Stainless-OS ", ["authorization", "x-stainless-os"]),
        ("user-agent,user-agent,USER-AGENT", ["user-agent"]),
        ("bad name, ok", ["ok"]),
        ('a"b, c\r\nd, e:f, good', ["good"]),
        ("x" * 65 + ", traceparent", ["traceparent"]),
        (",,, ,", []),
    ],
)
def test_requested_header_names(requested, names):
    assert requested_header_names(requested) == names


def test_requested_header_names_are_bounded():
    many = ",".join(f"x-h{i}" for i in range(500))
    assert len(requested_header_names(many)) == 64


@pytest.mark.parametrize(
    "origin", ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost", "http://localhost:1420"]
)
def test_allowed_origins_get_every_named_header(origin):
    guard = Guard(token="t", allowed_origins=["http://localhost:1420/"])
    guard.check_origin(origin)
    answer = guard.preflight_headers(origin, "authorization, user-agent, x-stainless-lang, openai-beta")
    assert answer["access-control-allow-origin"] == origin
    assert answer["access-control-allow-headers"] == "authorization, user-agent, x-stainless-lang, openai-beta"
    assert answer["access-control-allow-methods"] == "GET, POST, OPTIONS"
    assert int(answer["access-control-max-age"]) >= 600


def test_a_preflight_that_names_no_header_gets_the_basic_ones():
    answer = Guard(token=None).preflight_headers("tauri://localhost", None)
    assert answer["access-control-allow-headers"] == "authorization, content-type, x-request-id"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "tauri://evil", "http://tauri.localhost:8080", "http://localhost:1421", ""],
)
def test_other_origins_are_refused(origin):
    guard = Guard(token=None, allowed_origins=["http://localhost:1420"])
    with pytest.raises(Forbidden):
        guard.check_origin(origin)
    assert guard.cors_headers(origin) == {}


def test_responses_expose_the_gateway_headers():
    exposed = Guard(token=None).cors_headers("tauri://localhost")["access-control-expose-headers"]
    assert {h.strip() for h in exposed.split(",")} == {
        "x-request-id",
        "x-gateway-target",
        "retry-after",
        "x-should-retry",
    }
