"""type = "gemini": Google's native generateContent API behind the OpenAI interface, tested
against transcripts of its wire format (CRLF-separated SSE, function calls, safety blocks,
error shapes)."""

from __future__ import annotations

import openai
import pytest

from app.dialects.gemini import GeminiStreamTranslator, from_gemini_response, to_gemini_request
from app.errors import UpstreamStatusError
from tests.conftest import UPSTREAM_KEY
from tests.test_anthropic import sdk_view
from tests.upstream import transcript

pytestmark = pytest.mark.usefixtures("leak_guard")


# -- request transform -----------------------------------------------------------------------


def test_system_turns_images_and_tools():
    out = to_gemini_request(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
                    ],
                },
                {"role": "user", "content": "and the weather?"},
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
                {"role": "tool", "tool_call_id": "call_1", "content": '{"sky":"sunny"}'},
                {"role": "tool", "tool_call_id": "call_1", "content": "plain text"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "max_tokens": 50,
            "temperature": 0.3,
            "top_p": 0.9,
            "stop": "END",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        }
    )
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert out["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "what is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x/cat.jpg"}},
                {"text": "and the weather?"},
            ],
        },
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "plain text"}}},
            ],
        },
    ]
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parametersJsonSchema": {"type": "object"}}
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert out["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }


# -- answer transforms -------------------------------------------------------------------------


def test_function_call_answer_and_thinking_usage():
    import orjson

    completion = from_gemini_response(orjson.loads(transcript("gemini_tools.json")), "m", "gem")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'} and call["id"]
    # thinking counts as output: 15 candidates + 26 thoughts
    assert completion["usage"] == {"prompt_tokens": 50, "completion_tokens": 41, "total_tokens": 91}


@pytest.mark.parametrize(
    "name, where", [("gemini_prompt_blocked.json", "prompt"), ("gemini_answer_blocked.json", "answer")]
)
def test_safety_blocks_are_clear_errors(name, where):
    import orjson

    with pytest.raises(UpstreamStatusError) as info:
        from_gemini_response(orjson.loads(transcript(name)), "m", "gem")
    assert info.value.status == 400 and info.value.code == "content_filter" and not info.value.retryable
    assert f"blocked the {where} (SAFETY)" in info.value.message


def test_safety_stop_after_text_is_a_content_filter_finish():
    translator = GeminiStreamTranslator("gem", "m", include_usage=False)
    chunks = []
    for event in transcript("gemini_safety_midstream.sse").split(b"\r\n\r\n"):
        if event.strip():
            import orjson

            chunks += translator.feed(orjson.loads(event.removeprefix(b"data: ")))
    assert translator.finished and chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello"


# -- the openai SDK, end to end --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("scenario", ["text", "tools"])
def test_gemini_looks_like_openai(client, scenario, stream):
    openai_view = sdk_view(client, f"up/{scenario}", stream, tools=scenario == "tools")
    gemini_view = sdk_view(client, f"gem/{scenario}", stream, tools=scenario == "tools")
    if scenario == "tools":
        openai_view["usage"] = gemini_view["usage"]  # the OpenAI tool transcript's usage differs
    assert gemini_view == openai_view


@pytest.mark.parametrize("stream", [False, True])
def test_request_reaches_gemini_translated(client, upstream, stream):
    key = f"text:shape-{stream}"
    reply = client.chat.completions.create(
        model=f"gem/{key}",
        stream=stream,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    if stream:
        list(reply)
    seen = upstream.requests_for(key)[-1]
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    assert seen.path == f"/v1beta/models/text%3Ashape-{stream}:{method}"
    assert seen.headers["x-goog-api-key"] == UPSTREAM_KEY and "authorization" not in seen.headers
    assert seen.body == {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    }


@pytest.mark.parametrize(
    "model, error, text",
    [
        ("gem/error-400", openai.BadRequestError, "API key not valid"),
        ("gem/error-404", openai.NotFoundError, "is not found"),
        ("gem/error-429", openai.RateLimitError, "exceeded your current quota"),
        ("gem/error-503", openai.InternalServerError, "overloaded"),
        ("gem/prompt-blocked", openai.BadRequestError, "safety filters blocked the prompt"),
        ("gem/answer-blocked", openai.BadRequestError, "safety filters blocked the answer"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_gemini_errors_map_to_openai_statuses(client, model, error, text, stream):
    with pytest.raises(error) as info:
        reply = client.chat.completions.create(model=model, stream=stream, messages=[{"role": "user", "content": "x"}])
        if stream:
            list(reply)
    assert text in info.value.message and info.value.response.headers["x-should-retry"] == "false"
    if model == "gem/error-429":  # Google's RetryInfo in the body becomes retry-after
        assert info.value.response.headers["retry-after"] == "7" and info.value.code == "RESOURCE_EXHAUSTED"


def test_safety_stop_mid_stream_finishes_with_content_filter(client):
    text, finish = "", None
    for chunk in client.chat.completions.create(
        model="gem/safety-midstream", stream=True, messages=[{"role": "user", "content": "x"}]
    ):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == "Hello" and finish == "content_filter"


def test_stream_without_a_finish_reason_is_an_in_band_error(client):
    text = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(
            model="gem/no-finish", stream=True, messages=[{"role": "user", "content": "x"}]
        ):
            for choice in chunk.choices:
                text += choice.delta.content or ""
    assert text == "Hello!" and "finishReason" in info.value.message


def test_thought_signatures_go_back_with_their_calls(client, upstream):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    reply = client.chat.completions.create(
        model="gem/tools", tools=tools, messages=[{"role": "user", "content": "weather in Paris?"}]
    )
    call = reply.choices[0].message.tool_calls[0]
    key = "text:signed"
    client.chat.completions.create(
        model=f"gem/{key}",
        tools=tools,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    model_turn = upstream.requests_for(key)[-1].body["contents"][1]
    assert model_turn == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "CiQB0e2Kb8rvx3Vn1hC5JtZQ2bYt0aQ0",
            }
        ],
    }
