"""Claude looks exactly like OpenAI: pure transforms, then the SDK's view end to end."""

from __future__ import annotations

import json

import openai
import pytest

from app.dialects.anthropic import StreamTranslator, from_message, to_messages_request
from app.errors import InvalidRequest, UpstreamStatusError
from tests.conftest import UPSTREAM_KEY

pytestmark = pytest.mark.usefixtures("leak_guard")

# -- request transform -----------------------------------------------------------------------


def test_system_messages_go_to_system_and_turns_alternate():
    out = to_messages_request(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
                {"role": "user", "content": "one"},
                {"role": "user", "content": "two"},
            ]
        },
        "claude-x",
        stream=False,
        default_max_tokens=1000,
    )
    assert out["system"] == "Be brief.\n\nBe kind."
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}
    ]
    assert out["max_tokens"] == 1000 and out["model"] == "claude-x" and "stream" not in out


def test_images_base64_and_url():
    out = to_messages_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ]
        },
        "m",
        stream=True,
        default_max_tokens=10,
    )
    blocks = out["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert out["stream"] is True


def test_tools_tool_calls_and_results():
    out = to_messages_request(
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            "stop": "END",
            "max_tokens": 50,
            "temperature": 1.5,
            "top_p": 0.9,
            "user": "u-1",
        },
        "m",
        stream=False,
        default_max_tokens=4096,
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
    }
    assert out["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}],
    }
    assert out["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}
    ]
    assert out["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert out["stop_sequences"] == ["END"] and out["max_tokens"] == 50
    assert out["temperature"] == 1.0 and out["top_p"] == 0.9 and out["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize(
    "choice, expected", [("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"})]
)
def test_tool_choice(choice, expected):
    out = to_messages_request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tool_choice": choice,
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        "m",
        stream=False,
        default_max_tokens=1,
    )
    assert out["tool_choice"] == expected


def test_unsupported_content_is_a_client_error():
    with pytest.raises(InvalidRequest):
        to_messages_request(
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "m",
            stream=False,
            default_max_tokens=1,
        )


# -- response and stream transforms ------------------------------------------------------------


@pytest.mark.parametrize(
    "stop_reason, finish",
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason, finish):
    completion = from_message(
        {
            "id": "msg",
            "model": "m",
            "content": [{"type": "text", "text": "x"}],
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 1, "output_tokens": 2},
        }
    )
    assert completion["choices"][0]["finish_reason"] == finish


def test_usage_counts_cached_input_as_prompt():
    completion = from_message(
        {
            "id": "m",
            "model": "m",
            "content": [],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 3,
                "cache_read_input_tokens": 10,
                "cache_creation_input_tokens": 5,
                "output_tokens": 2,
            },
        }
    )
    assert completion["usage"] == {"prompt_tokens": 18, "completion_tokens": 2, "total_tokens": 20}


def test_stream_error_event_becomes_an_error():
    translator = StreamTranslator("claude", "m", include_usage=False)
    with pytest.raises(UpstreamStatusError) as info:
        translator.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert info.value.status == 502 and info.value.code == "overloaded_error" and info.value.retryable


def test_ping_and_unknown_events_are_dropped():
    translator = StreamTranslator("claude", "m", include_usage=False)
    assert translator.feed("ping", {"type": "ping"}) == []
    assert translator.feed("future_event", {"type": "future_event"}) == []


# -- end to end: the SDK sees the same thing as with the OpenAI transcript ---------------------


def sdk_view(client, model: str, stream: bool, tools: bool = False) -> dict:
    kwargs = dict(model=model, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    if tools:
        kwargs["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    if not stream:
        reply = client.chat.completions.create(**kwargs)
        message = reply.choices[0].message
        return {
            "text": message.content,
            "finish": reply.choices[0].finish_reason,
            "calls": [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []],
            "usage": (reply.usage.prompt_tokens, reply.usage.completion_tokens),
        }
    text, finish, usage, calls = "", None, None, {}
    for chunk in client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                name, args = calls.get(call.index, ("", ""))
                calls[call.index] = (name + (call.function.name or ""), args + (call.function.arguments or ""))
    return {
        "text": text or None,
        "finish": finish,
        "usage": usage,
        "calls": [(name, json.loads(args)) for name, args in calls.values()],
    }


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("scenario", ["text", "tools"])
def test_claude_looks_like_openai(client, scenario, stream):
    openai_view = sdk_view(client, f"up/{scenario}", stream, tools=scenario == "tools")
    claude_view = sdk_view(client, f"claude/{scenario}", stream, tools=scenario == "tools")
    if stream and scenario == "tools":
        openai_view["usage"] = claude_view["usage"]  # the OpenAI tool transcript has no usage chunk
    assert claude_view == openai_view


def test_request_reaches_anthropic_translated(client, upstream):
    client.chat.completions.create(
        model="claude/text:shape",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    seen = upstream.requests_for("text:shape")[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == UPSTREAM_KEY and seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["system"] == "be brief" and seen.body["max_tokens"] == 4096
    assert seen.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_anthropic_errors_map_to_openai_statuses(client):
    with pytest.raises(openai.InternalServerError) as overloaded:
        client.chat.completions.create(model="claude/overloaded", messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 502 and "Overloaded" in overloaded.value.message
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="claude/rate-limit", messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="claude/bad-request", messages=[{"role": "user", "content": "x"}])
    assert "alternate" in bad.value.message and bad.value.type == "invalid_request_error"


def test_anthropic_error_event_mid_stream_is_an_in_band_error(client):
    stream = client.chat.completions.create(
        model="claude/error-midstream", stream=True, messages=[{"role": "user", "content": "x"}]
    )
    text = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
    assert text == "Hello" and "Overloaded" in info.value.message
