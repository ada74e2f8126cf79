"""The gateway as the official openai SDK sees it, against a real upstream on loopback."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.support import collect

pytestmark = pytest.mark.usefixtures("leak_guard")


def test_non_streamed_answer_is_the_upstreams(client):
    reply = client.chat.completions.create(model="up/text", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello! 你好 👋"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == 15


def test_streamed_text_arrives_whole_with_usage(client):
    stream = client.chat.completions.create(
        model="up/text",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, chunks = collect(stream)
    # U+2028 inside a JSON string must survive: a line splitter on Unicode breaks would cut it
    assert text == "Hello! 你好 👋 line\u2028sep"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 15


def test_streamed_tool_call_deltas_assemble(client):
    stream = client.chat.completions.create(
        model="up/tools",
        messages=[{"role": "user", "content": "weather?"}],
        stream=True,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                assert call.index == 0
                name += call.function.name or ""
                arguments += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"


def test_non_streamed_tool_call(client):
    reply = client.chat.completions.create(
        model="up/tools",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_unknown_fields_reach_the_upstream_and_model_is_rewritten(client, upstream):
    reply = client.chat.completions.create(
        model="up/echo-body:passthrough",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"vendor_option": {"depth": 2}, "seed": 7},
    )
    received = json.loads(reply.choices[0].message.content)
    assert received["vendor_option"] == {"depth": 2} and received["seed"] == 7
    assert received["model"] == "echo-body:passthrough"
    seen = upstream.requests_for("echo-body:passthrough")[-1]
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_echo_model_streams_the_last_user_message(client):
    stream = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "say 你好 back"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, chunks = collect(stream)
    assert text == "say 你好 back"
    assert chunks[-1].usage.completion_tokens == 3


def test_alias_routes_to_its_first_target(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-gateway-target"] == "up/text"
    assert raw.parse().choices[0].message.content == "Hello! 你好 👋"


def test_embeddings(client):
    result = client.embeddings.create(model="up/text-embedding-3-small", input="hello")
    assert len(result.data[0].embedding) == 3


def test_embeddings_refused_by_a_provider_without_them(client):
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="echo", input="hello")


def test_models_list_and_lookup(client):
    ids = {m.id for m in client.models.list()}
    assert {"echo", "fast", "gpt-4o-mini", "dead-model"} <= ids
    assert client.models.retrieve("up/anything").owned_by == "up"
    assert client.models.retrieve("fast").id == "fast"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"


def test_request_id_is_echoed_or_made(gateway):
    with httpx.Client(base_url=gateway.url) as http:
        assert http.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
        made = http.get("/health").headers["x-request-id"]
        assert made and made != "abc-123"
        assert http.get("/nowhere").headers["x-request-id"]


def test_health(gateway):
    body = httpx.get(gateway.url + "/health").json()
    assert body["status"] == "ok" and body["pid"] == gateway.pid and body["version"]


# -- upstream failures before the first byte: real statuses -------------------------------


def test_rate_limit_is_429_with_retry_after_and_no_sdk_retry(client):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="up/rate-limit", messages=[{"role": "user", "content": "x"}])
    headers = info.value.response.headers
    assert headers["retry-after"] == "0"
    assert headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    "scenario, words",
    [
        ("error-500", "server had an error"),
        ("error-html", "502 Bad Gateway"),
        ("error-503", "503"),
    ],
)
def test_upstream_5xx_becomes_502_with_its_message(client, scenario, words):
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=f"up/{scenario}", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert words in info.value.message
    assert info.value.response.headers["x-should-retry"] == "false"


def test_upstream_4xx_keeps_its_status_and_param(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="up/error-400", messages=[{"role": "user", "content": "x"}])
    assert info.value.param == "temperature"


def test_upstream_401_never_shows_the_key(client):
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="up/error-401", messages=[{"role": "user", "content": "x"}])
    assert UPSTREAM_KEY not in info.value.response.text
    assert "sk-test" not in info.value.response.text


def test_refused_connection_is_502_unreachable(client):
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502 and info.value.code == "upstream_unreachable"


def test_reset_before_headers_is_502(client):
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="up/reset-before-headers", messages=[{"role": "user", "content": "x"}], stream=True
        )


def test_hang_before_headers_is_504_after_first_byte_timeout(client, upstream):
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="up/hang-before-headers:504", stream=True, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 504
    seen = upstream.requests_for("hang-before-headers:504")[-1]
    assert seen.peer_closed.wait(2), "the gateway kept the upstream connection after giving up"


def test_non_streamed_hang_is_504(client):
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="up/slow-json:504", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 504


def test_stream_answered_with_html_is_502(client):
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="up/html-200", stream=True, messages=[{"role": "user", "content": "x"}])


# -- failures after the first byte: one in-band error, never [DONE] -----------------------


def raw_stream(gateway, model: str) -> str:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        return response.read().decode()


@pytest.mark.parametrize(
    "scenario, code",
    [
        ("reset-mid-stream", "upstream_protocol_error"),
        ("no-done", "upstream_protocol_error"),
        ("malformed", "upstream_protocol_error"),
        ("hang-mid-stream", "upstream_timeout"),
    ],
)
def test_failure_mid_stream_ends_with_one_error_event_and_no_done(client, gateway, scenario, code):
    text = raw_stream(gateway, f"up/{scenario}")
    events = [e for e in text.split("\n\n") if e.startswith("data: ")]
    assert "data: [DONE]" not in text
    last = json.loads(events[-1][len("data: ") :])
    assert last["error"]["code"] == code
    assert sum('"error"' in e for e in events) == 1
    # and the SDK raises rather than reporting a short answer as a success
    with pytest.raises(openai.APIError):
        collect(
            client.chat.completions.create(
                model=f"up/{scenario}", stream=True, messages=[{"role": "user", "content": "x"}]
            )
        )


def test_silent_stream_gets_heartbeats(gateway):
    text = raw_stream(gateway, "up/hang-mid-stream")
    assert text.count(": ping\n\n") >= 2  # heartbeat 0.5 s, idle timeout 2 s


def test_slow_drip_completes(client):
    text, _ = collect(
        client.chat.completions.create(model="up/slow-drip", stream=True, messages=[{"role": "user", "content": "x"}])
    )
    assert text == "Hello" * 10


def test_request_log_line(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model="up/text",
        messages=[{"role": "user", "content": "secret words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    collect(raw.parse())
    line = gateway.log_line_for(raw.headers["x-request-id"])
    assert "status=200" in line and "model=up/text" in line and "target=up/text" in line
    assert "tokens=9+6" in line and "disconnected=no" in line and "ttfb_ms=" in line
    assert "secret words" not in gateway.log_text()


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_whole_answer_to_a_stream_request_is_replayed_as_chunks(client, include_usage):
    options = {"include_usage": True} if include_usage else None
    chunks = list(
        client.chat.completions.create(
            model="up/json-anyway", stream=True, stream_options=options, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! 你好 👋"
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if include_usage else 0)
