"""POST /v1/messages (and count_tokens): the Anthropic Messages API onto any provider, as the
anthropic SDK sees it.

Pure transforms first, then the SDK against a real gateway and upstream: translated to
chat for OpenAI-compatible and Gemini upstreams, passed through unchanged to an
Anthropic upstream.
"""

from __future__ import annotations

import json
import uuid

import anthropic
import pytest

from app.dialects import anthropic as ad
from app.errors import InvalidRequest, ModelNotFound, PayloadTooLarge, Unauthorized, UpstreamTimeout
from tests import rawhttp
from tests.conftest import UPSTREAM_KEY
from tests.gateway import GatewayProcess, write_config
from tests.test_disconnects import wait_for_request
from tests.upstream import sse_events

pytestmark = pytest.mark.usefixtures("leak_guard")

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def claude(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as c:
        yield c


# -- request transform -----------------------------------------------------------------------


def test_system_images_tools_and_results_become_chat():
    out = ad.from_messages_request(
        {
            "model": "m",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                        {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "s"},
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "sunny"}],
                        },
                        {"type": "text", "text": "and tomorrow?"},
                    ],
                },
                {"role": "assistant", "content": "no idea"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "metadata": {"user_id": "u-1"},
            "stream": True,
        }
    )
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]},
        {"role": "assistant", "content": "no idea"},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": "Weather in a city",
            },
        }
    ]
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assert out["stop"] == ["END"] and out["max_tokens"] == 100 and out["user"] == "u-1"
    assert out["stream_options"] == {"include_usage": True}


def test_error_tool_results_say_so():
    out = ad.from_messages_request(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t", "content": "no such city", "is_error": True}
                    ],
                }
            ],
        }
    )
    assert out["messages"] == [{"role": "tool", "tool_call_id": "t", "content": "Error: no such city"}]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "m", "max_tokens": 5}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0"),
        ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools.0",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages.0.content[0]",
        ),
    ],
)
def test_bad_requests_name_the_param(body, param):
    with pytest.raises(InvalidRequest) as info:
        ad.from_messages_request(body)
    assert info.value.param == param


# -- answer and stream transforms --------------------------------------------------------------


@pytest.mark.parametrize(
    "finish, stop_reason",
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_completion_becomes_a_message(finish, stop_reason):
    out = ad.to_message(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {
                        "role": "assistant",
                        "content": "hi",
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
                        ],
                    },
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        },
        "m",
    )
    assert out["type"] == "message" and out["role"] == "assistant" and out["id"].startswith("msg_")
    assert out["content"] == [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
    ]
    assert out["stop_reason"] == stop_reason and out["usage"] == {"input_tokens": 3, "output_tokens": 4}


def events_of(data: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in data.split(b"\n\n"):
        if block.strip():
            name, payload = block.split(b"\n", 1)
            out.append((name.removeprefix(b"event: ").decode(), json.loads(payload.removeprefix(b"data: "))))
    return out


def replay(transcript: str) -> list[tuple[str, dict]]:
    writer = ad.MessagesWriter("m")
    data = b""
    for event in sse_events(transcript):
        payload = event.strip().removeprefix(b"data: ")
        if payload != b"[DONE]":
            data += writer.write(json.loads(payload))
    return events_of(data + writer.finish())


def test_text_stream_event_sequence():
    events = replay("openai_text.sse")
    names = [name for name, _ in events]
    assert names[:4] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "Hello! 你好 👋 line\u2028sep"
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"] == {"input_tokens": 9, "output_tokens": 6}


def test_tool_stream_event_sequence():
    events = replay("openai_tools.sse")
    start = next(d for n, d in events if n == "content_block_start")
    assert start["content_block"] == {"type": "tool_use", "id": "call_abc123", "name": "get_weather", "input": {}}
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta")
    assert json.loads(partial) == {"city": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    "error, status_type",
    [
        (InvalidRequest("x"), "invalid_request_error"),
        (Unauthorized("x"), "authentication_error"),
        (ModelNotFound("x"), "not_found_error"),
        (PayloadTooLarge("x"), "request_too_large"),
        (UpstreamTimeout("x"), "timeout_error"),
    ],
)
def test_errors_in_anthropic_shape(error, status_type):
    assert ad.error_body(error) == {"type": "error", "error": {"type": status_type, "message": "x"}}


# -- the anthropic SDK, end to end -------------------------------------------------------------


@pytest.mark.parametrize("model", ["up/text", "claude/text", "gem/text"])
def test_create(claude, model):
    message = claude.messages.create(
        model=model, max_tokens=100, system="be brief", messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "Hello! 你好 👋"
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert message.usage.input_tokens == 9 and message.usage.output_tokens == 6


@pytest.mark.parametrize("model", ["up/text", "claude/text", "gem/text"])
def test_stream(claude, model):
    with claude.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hello! 你好 👋") and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["up/tools", "claude/tools", "gem/tools"])
def test_tools(claude, model, stream):
    kwargs = dict(
        model=model, max_tokens=100, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "weather in Paris?"}]
    )
    if stream:
        with claude.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = claude.messages.create(**kwargs)
    uses = [block for block in message.content if block.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"} and uses[0].id
    assert message.stop_reason == "tool_use"


def test_tool_result_reaches_a_chat_upstream(claude, upstream):
    key = "echo-body:tr-" + uuid.uuid4().hex[:6]
    claude.messages.create(
        model=f"up/{key}",
        max_tokens=10,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "snow"}]},
        ],
    )
    seen = upstream.requests_for(key)[-1]
    assert seen.path == "/v1/chat/completions" and seen.body["max_tokens"] == 10
    assert seen.body["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert seen.body["messages"][2] == {"role": "tool", "tool_call_id": "toolu_9", "content": "snow"}


def test_passthrough_sends_the_body_unchanged(claude, upstream):
    key = "text:pass-" + uuid.uuid4().hex[:6]
    body = dict(
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "web_search_20250305", "name": "web_search"}],
    )
    message = claude.messages.create(
        model=f"claude/{key}",
        **body,
        extra_headers={"anthropic-beta": "future-1"},
        extra_body={"future_field": {"a": 1}},
    )
    seen = upstream.requests_for(key)[-1]
    assert seen.path == "/v1/messages" and seen.body == {"model": key, **body, "future_field": {"a": 1}}
    assert seen.headers["x-api-key"] == UPSTREAM_KEY and seen.headers["anthropic-beta"] == "future-1"
    assert message.id == "msg_01XFDUDYJgAACzvnptvVoYEM"  # the upstream's own answer


def test_count_tokens(claude):
    counted = claude.messages.count_tokens(model="claude/text", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.count_tokens(model="up/text", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["error"]["type"] == "not_found_error"
    assert "count" in info.value.body["error"]["message"]


def test_errors_are_in_anthropic_shape(claude):
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="nope-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["type"] == "error" and missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model="up/text", max_tokens=5, messages=[])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(model="claude/rate-limit", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.InternalServerError) as failed:
        claude.messages.create(
            model="up/error-500", max_tokens=5, messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert failed.value.status_code == 502 and failed.value.body["error"]["type"] == "api_error"


@pytest.mark.parametrize("model", ["up/error-event", "claude/error-midstream"])
def test_failure_mid_stream_raises_in_the_sdk(claude, model):
    text = ""
    with pytest.raises(anthropic.APIStatusError) as info:
        with claude.messages.stream(model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]) as s:
            for piece in s.text_stream:
                text += piece
    assert text and "overloaded" in str(info.value.body).lower()


@pytest.mark.parametrize("model", ["up/long-stream", "claude/long-stream"])
def test_client_leaving_mid_stream_cancels_the_upstream(gateway, upstream, model):
    key = model.split("/")[1] + ":leave-" + uuid.uuid4().hex[:6]
    request_id = "msg-dc-" + uuid.uuid4().hex
    sock = rawhttp.post(
        gateway.port,
        "/v1/messages",
        {
            "model": model.split("/")[0] + "/" + key,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        headers={"x-request-id": request_id},
    )
    seen = wait_for_request(upstream, key)
    assert b"message_start" in rawhttp.read_until(sock, b"content_block_delta")
    rawhttp.leave(sock, "reset")
    assert seen.peer_closed.wait(1.0), "the upstream connection outlived the client"
    assert not seen.completed.is_set()
    line = gateway.log_line_for(request_id)
    assert "POST /v1/messages" in line and "disconnected=yes" in line


TOKEN = "gw-token-for-messages-7d1f"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("messages-token")
    config = write_config(tmp, '[providers.echo]\ntype = "echo"\n')
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp, env={"AI_GATEWAY_TOKEN": TOKEN}) as gw:
        yield gw


def test_x_api_key_is_the_token_on_anthropic_routes(guarded):
    with anthropic.Anthropic(base_url=guarded.url, api_key=TOKEN, max_retries=0) as ok:
        assert (
            ok.messages.create(model="echo", max_tokens=5, messages=[{"role": "user", "content": "hi there"}])
            .content[0]
            .text
            == "hi there"
        )
    with anthropic.Anthropic(base_url=guarded.url, auth_token=TOKEN, max_retries=0) as bearer:
        assert bearer.messages.create(model="echo", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with anthropic.Anthropic(base_url=guarded.url, api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as info:
            wrong.messages.create(model="echo", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "authentication_error" and "x-api-key" in info.value.message
    import httpx

    # x-api-key is not a token on the OpenAI-shaped routes
    refused = httpx.post(
        guarded.url + "/v1/chat/completions",
        headers={"x-api-key": TOKEN},
        json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
    )
    assert refused.status_code == 401 and "error" in refused.json() and "type" not in refused.json()


def test_passthrough_log_line_has_the_tokens(claude, gateway):
    request_id = "msg-log-" + uuid.uuid4().hex
    claude.messages.create(
        model="claude/text",
        max_tokens=5,
        messages=[{"role": "user", "content": "x"}],
        extra_headers={"x-request-id": request_id},
    )
    line = gateway.log_line_for(request_id)
    assert "target=claude/text" in line and "tokens=9+6" in line


def test_fallback_before_the_first_byte_from_a_translated_to_a_native_target(claude, client):
    with claude.messages.stream(model="mixed", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
        assert stream.response.headers["x-gateway-target"] == "claude/text"
        final = stream.get_final_message()
    assert final.id == "msg_01XFDUDYJgAACzvnptvVoYEL"  # relayed from the native stream as it came
    reply = client.responses.with_raw_response.create(model="mixed", input="x")
    assert reply.headers["x-gateway-target"] == "claude/text" and reply.parse().output_text == "Hello! 你好 👋"
