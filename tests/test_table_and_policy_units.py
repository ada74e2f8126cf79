"""Table tests for the pure parts: routing table, retry policy, cooldowns, retry-after."""

from __future__ import annotations

import pytest

from app.config import ProviderSettings, RetrySettings
from app.errors import (
    ModelNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from app.providers.base import client_status_for, error_from_response, parse_retry_after
from app.routing.policy import Cooldowns, RetryPolicy
from app.routing.table import RoutingTable, Target

PROVIDERS = [
    ProviderSettings(name="echo", type="echo", models=("echo",)),
    ProviderSettings(name="openai", type="openai", models=("gpt-4o", "gpt-*")),
    ProviderSettings(name="anthropic", type="anthropic", models=("claude-*",)),
    ProviderSettings(name="off", type="openai", models=("off-model",), missing_env=("OFF_KEY",)),
    ProviderSettings(name="any", type="openai", models=("*",)),
]
ALIASES = {"fast": ("openai/gpt-4o-mini", "off/x", "echo"), "dead": ("off/x",), "gpt-4o": ("echo",)}


@pytest.fixture
def table():
    return RoutingTable(PROVIDERS, ALIASES)


@pytest.mark.parametrize(
    "model, expected",
    [
        ("echo", [Target("echo", "echo")]),
        ("openai/whatever", [Target("openai", "whatever")]),
        ("gpt-4o-mini", [Target("openai", "gpt-4o-mini")]),  # pattern
        ("claude-3-5-sonnet", [Target("anthropic", "claude-3-5-sonnet")]),
        ("llama3", [Target("any", "llama3")]),  # "*"
        ("meta/llama-3", [Target("any", "meta/llama-3")]),  # not a provider prefix
        ("fast", [Target("openai", "gpt-4o-mini"), Target("echo", "echo")]),  # disabled target skipped
        ("gpt-4o", [Target("echo", "echo")]),  # an alias wins over a listing
        ("any/echo", [Target("any", "echo")]),
    ],
)
def test_resolution(table, model, expected):
    assert table.resolve(model) == expected


def test_exact_listing_beats_an_earlier_pattern():
    table = RoutingTable(
        [
            ProviderSettings(name="a", type="openai", models=("m-*",)),
            ProviderSettings(name="b", type="openai", models=("m-1",)),
        ],
        {},
    )
    assert table.resolve("m-1") == [Target("b", "m-1")]
    assert table.resolve("m-2") == [Target("a", "m-2")]


@pytest.mark.parametrize(
    "model, words",
    [
        ("off/x", "OFF_KEY"),
        ("dead", "no usable target"),
    ],
)
def test_disabled_providers_say_why(table, model, words):
    with pytest.raises(ModelNotFound) as info:
        table.resolve(model)
    assert words in info.value.message


def test_unknown_model_without_catch_all():
    table = RoutingTable(PROVIDERS[:3], {})
    with pytest.raises(ModelNotFound) as info:
        table.resolve("mystery")
    assert info.value.code == "model_not_found" and info.value.param == "model"


def test_model_ids_lists_aliases_and_concrete_models(table):
    ids = dict(table.model_ids())
    assert list(ids)[:3] == ["fast", "dead", "gpt-4o"]
    assert ids["echo"] == "echo"
    assert ids["openai/gpt-4o"] == "openai"  # the bare id is an alias, so the qualified id is listed
    assert "off-model" not in ids and "off/off-model" not in ids
    assert not any("*" in i for i in ids)


# -- retry policy ------------------------------------------------------------------------------

SETTINGS = RetrySettings(attempts=3, backoff_initial=1.0, backoff_max=4.0, retry_after_max=10.0)


@pytest.mark.parametrize(
    "attempt, error, rng, expected",
    [
        (1, UpstreamUnreachable("x"), 0.0, 0.5),  # half fixed
        (1, UpstreamUnreachable("x"), 1.0, 1.0),  # plus up to half random
        (2, UpstreamTimeout("x"), 0.5, 1.5),  # doubles
        (3, UpstreamTimeout("x"), 0.5, None),  # attempts used up
        (1, UpstreamRateLimited("x", retry_after=3.0), 0.9, 3.0),  # retry-after wins
        (1, UpstreamRateLimited("x", retry_after=60.0), 0.9, None),  # over the cap: move on
        (1, UpstreamStatusError("x", status=400), 0.5, None),  # the request's fault
        (1, UpstreamStatusError("x", status=404), 0.5, None),
        (1, UpstreamStatusError("x", status=409), 0.5, None),
        (1, UpstreamStatusError("x", status=408), 0.0, 0.5),
        (1, UpstreamStatusError("x", status=503), 0.0, 0.5),
        (1, UpstreamProtocolError("x"), 0.0, 0.5),
    ],
)
def test_retry_policy(attempt, error, rng, expected):
    policy = RetryPolicy(SETTINGS, rng=lambda: rng)
    assert policy.delay(attempt, error) == expected


def test_backoff_is_capped():
    policy = RetryPolicy(RetrySettings(attempts=10, backoff_initial=1.0, backoff_max=4.0), rng=lambda: 1.0)
    assert policy.delay(8, UpstreamUnreachable("x")) == 4.0


def test_no_retry_when_configured_for_one_attempt():
    policy = RetryPolicy(RetrySettings(attempts=1), rng=lambda: 0.0)
    assert policy.delay(1, UpstreamUnreachable("x")) is None


def test_cooldown_after_repeated_failures_and_expiry():
    now = [100.0]
    cooldowns = Cooldowns(after=2, seconds=30, clock=lambda: now[0])
    cooldowns.failed("a")
    assert cooldowns.available("a")
    cooldowns.failed("a")
    assert not cooldowns.available("a")
    now[0] += 29.9
    assert not cooldowns.available("a")
    now[0] += 0.2
    assert cooldowns.available("a")


def test_success_resets_the_failure_count():
    cooldowns = Cooldowns(after=2, seconds=30, clock=lambda: 0.0)
    cooldowns.failed("a")
    cooldowns.succeeded("a")
    cooldowns.failed("a")
    assert cooldowns.available("a")


# -- retry-after and upstream error normalisation ---------------------------------------------


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, None),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),
    ],
)
def test_parse_retry_after(headers, expected):
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(headers, now=now) == expected


@pytest.mark.parametrize(
    "upstream, client",
    [
        (400, 400),
        (401, 401),
        (403, 403),
        (404, 404),
        (422, 422),
        (429, 429),
        (408, 504),
        (418, 400),
        (500, 502),
        (502, 502),
        (503, 502),
        (504, 504),
        (529, 502),
    ],
)
def test_status_mapping(upstream, client):
    assert client_status_for(upstream) == client


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}', "bad key"),
        (b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "Overloaded"),
        (b'{"detail":"Not Found"}', "Not Found"),
        (b'{"error":"plain string"}', "plain string"),
        (b"<html><title>503 Service Unavailable</title></html>", "503 Service Unavailable"),
        (b"", ""),
        (b"upstream connect error", "upstream connect error"),
    ],
)
def test_error_bodies_are_normalised(body, message):
    err = error_from_response("p", 500, {}, body)
    assert err.status == 502 and message in err.message and err.retryable


def test_rate_limit_error_keeps_retry_after():
    err = error_from_response("p", 429, {"retry-after": "3"}, b"")
    assert isinstance(err, UpstreamRateLimited) and err.retry_after == 3.0 and err.status == 429


def test_client_error_is_not_retryable_and_keeps_type_and_param():
    err = error_from_response(
        "p", 400, {}, b'{"error":{"message":"m","type":"invalid_request_error","param":"temperature"}}'
    )
    assert not err.retryable and err.param == "temperature" and err.type == "invalid_request_error"
