"""POST /v1/responses: the OpenAI Responses API onto any provider, as the openai SDK sees it.

Pure transforms first (table tests), then the SDK against a real gateway and upstream:
translated to chat for an OpenAI-compatible upstream (and Anthropic's), passed through to
an upstream that serves the Responses API itself.
"""

from __future__ import annotations

import json
import uuid

import openai
import pytest

from app.dialects import responses as rd
from app.errors import InvalidRequest, NotFound, UpstreamTimeout
from app.server.response_store import ResponseStore
from tests import rawhttp
from tests.conftest import UPSTREAM_KEY
from tests.test_disconnects import wait_for_request
from tests.upstream import sse_events

pytestmark = pytest.mark.usefixtures("leak_guard")

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


# -- request transform -----------------------------------------------------------------------


def test_string_input_and_instructions():
    out = rd.from_responses_request(
        {"model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 20, "temperature": 0.5}
    )
    assert out["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert out["max_tokens"] == 20 and out["temperature"] == 0.5 and "stream" not in out


def test_items_with_function_calls_and_outputs():
    out = rd.from_responses_request(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "weather?"},
                        {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                    ],
                },
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "stream": True,
        }
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_json_schema_format_becomes_response_format():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    out = rd.from_responses_request(
        {
            "model": "m",
            "input": "x",
            "text": {"format": {"type": "json_schema", "name": "num", "schema": schema, "strict": True}},
        }
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "num", "schema": schema, "strict": True},
    }


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "", "input": "x"}, "model"),
    ],
)
def test_bad_requests_name_the_param(body, param):
    with pytest.raises(InvalidRequest) as info:
        rd.from_responses_request(body)
    assert info.value.param == param


# -- answer and stream transforms --------------------------------------------------------------


def completion(message: dict, finish: str = "stop") -> dict:
    return {
        "id": "c",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def test_completion_becomes_a_response():
    out = rd.to_response(
        completion(
            {
                "role": "assistant",
                "content": "hi",
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            "tool_calls",
        ),
        {"model": "m", "input": "x"},
        "m",
    )
    assert out["object"] == "response" and out["status"] == "completed" and out["id"].startswith("resp_")
    assert [item["type"] for item in out["output"]] == ["message", "function_call"]
    assert out["output"][0]["content"][0] == {"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}
    assert out["output"][1]["call_id"] == "call_9" and out["output"][1]["name"] == "f"
    usage = out["usage"]
    assert usage["input_tokens"] == 3 and usage["output_tokens"] == 4 and usage["total_tokens"] == 7


def test_length_finish_is_incomplete():
    out = rd.to_response(completion({"role": "assistant", "content": "cut"}, "length"), {"input": "x"}, "m")
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}


def events_of(data: bytes) -> list[dict]:
    out = []
    for block in data.split(b"\n\n"):
        if block.strip():
            name, payload = block.split(b"\n", 1)
            event = json.loads(payload.removeprefix(b"data: "))
            assert name == b"event: " + event["type"].encode()
            out.append(event)
    return out


def replay(transcript: str) -> list[dict]:
    writer = rd.ResponsesWriter({"model": "m", "input": "x"}, "m")
    data = b""
    for event in sse_events(transcript):
        payload = event.strip().removeprefix(b"data: ")
        if payload != b"[DONE]":
            data += writer.write(json.loads(payload))
    return events_of(data + writer.finish())


def test_text_stream_event_sequence():
    events = replay("openai_text.sse")
    kinds = [e["type"] for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello! 你好 👋 line\u2028sep"
    assert final["usage"]["total_tokens"] == 15


def test_tool_stream_event_sequence():
    events = replay("openai_tools.sse")
    kinds = [e["type"] for e in events]
    assert kinds.count("response.output_item.added") == 1
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    assert done["type"] == "function_call" and done["call_id"] == "call_abc123"
    assert json.loads(done["arguments"]) == {"city": "Paris"}


def test_failure_after_the_first_byte_is_failed_then_error():
    writer = rd.ResponsesWriter({"input": "x"}, "m")
    writer.write({"choices": [{"index": 0, "delta": {"content": "Hel"}}]})
    events = events_of(writer.fail(UpstreamTimeout("upstream went silent"), str))
    assert [e["type"] for e in events] == ["response.failed", "error"]
    assert events[0]["response"]["status"] == "failed"
    assert events[1]["message"] == "upstream went silent" and events[1]["error"]["code"] == "upstream_timeout"


# -- the store of previous responses -----------------------------------------------------------


def test_store_is_bounded_by_count_and_bytes_least_recent_first():
    store = ResponseStore(max_entries=3, max_bytes=10_000)
    for i in range(4):
        store.put(f"r{i}", [{"role": "user", "content": str(i)}])
    with pytest.raises(NotFound):
        store.get("r0")
    store.get("r1")  # now the most recent
    store.put("big", [{"role": "user", "content": "x" * 9_000}])
    assert len(store) <= 3 and store.bytes <= 10_000
    assert store.get("r1") and store.get("big")
    with pytest.raises(NotFound):
        store.get("r2")
    store.put("huge", [{"role": "user", "content": "x" * 20_000}])  # larger than the store: not kept
    with pytest.raises(NotFound) as info:
        store.get("huge")
    assert info.value.status == 404 and info.value.param == "previous_response_id"


# -- the openai SDK, end to end --------------------------------------------------------------------


@pytest.mark.parametrize("model", ["up/text", "openresp/text", "claude/text", "gem/gemini-2.5-flash-text"])
def test_create_non_streamed(client, model):
    model = model.replace("gemini-2.5-flash-text", "text")
    reply = client.responses.create(model=model, input="hi", instructions="be brief")
    assert reply.output_text == "Hello! 你好 👋"
    assert reply.status == "completed" and reply.usage is not None and reply.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["up/text", "openresp/text", "claude/text"])
def test_stream_helper_assembles_the_answer(client, model):
    deltas = []
    with client.responses.stream(model=model, input="hi") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.output_text.startswith("Hello! 你好 👋")
    assert final.usage is not None and final.usage.total_tokens == 15


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["up/tools", "claude/tools"])
def test_function_calls(client, model, stream):
    if stream:
        with client.responses.stream(model=model, input="weather in Paris?", tools=[WEATHER_TOOL]) as events:
            reply = events.get_final_response()
    else:
        reply = client.responses.create(model=model, input="weather in Paris?", tools=[WEATHER_TOOL])
    calls = [item for item in reply.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id
    assert json.loads(calls[0].arguments) == {"city": "Paris"}


def test_function_call_output_reaches_the_upstream(client, upstream):
    key = "echo-body:fco-" + uuid.uuid4().hex[:6]
    client.responses.create(
        model=f"up/{key}",
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "call_7", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call_output", "call_id": "call_7", "output": "snow"},
        ],
        text={"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
    )
    seen = upstream.requests_for(key)[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body["messages"][1]["tool_calls"][0]["id"] == "call_7"
    assert seen.body["messages"][2] == {"role": "tool", "tool_call_id": "call_7", "content": "snow"}
    assert seen.body["response_format"]["json_schema"]["name"] == "w"


def test_previous_response_id_continues_the_conversation(client, upstream):
    key = "echo-body:prev-" + uuid.uuid4().hex[:6]
    first = client.responses.create(model=f"up/{key}", input="first", instructions="only for the first")
    with client.responses.stream(model=f"up/{key}", input="second", previous_response_id=first.id) as stream:
        second = stream.get_final_response()
    client.responses.create(model=f"up/{key}", input="third", previous_response_id=second.id)
    seen = upstream.requests_for(key)[-1].body["messages"]
    assert [m["role"] for m in seen] == ["user", "assistant", "user", "assistant", "user"]
    assert [seen[0]["content"], seen[2]["content"], seen[4]["content"]] == ["first", "second", "third"]
    assert json.loads(seen[1]["content"])["messages"][0]["content"] == "only for the first"


def test_unknown_or_unstored_previous_response_is_404(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="up/text", input="x", previous_response_id="resp_unknown")
    assert "resp_unknown" in info.value.message
    unstored = client.responses.create(model="up/text", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="up/text", input="y", previous_response_id=unstored.id)


def test_passthrough_sends_the_body_unchanged(client, upstream):
    key = "text:pass-" + uuid.uuid4().hex[:6]
    reply = client.responses.create(
        model=f"openresp/{key}", input="hi", store=False, extra_body={"some_future_field": {"a": 1}}
    )
    seen = upstream.requests_for(key)[-1]
    assert seen.path == "/v1/responses" and seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen.body == {"model": key, "input": "hi", "store": False, "some_future_field": {"a": 1}}
    assert reply.id == "resp_68a1f0c2d4e0819a9c3b2f1e0d7c6b5a"  # the upstream's own answer


@pytest.mark.parametrize("model", ["up/error-event", "openresp/failed-midstream"])
def test_failure_mid_stream_raises_in_the_sdk(client, model):
    seen = []
    with pytest.raises(openai.APIError) as info:
        for event in client.responses.create(model=model, input="x", stream=True):
            seen.append(event.type)
    assert "mid" in info.value.message
    assert seen[0] == "response.created" and "response.completed" not in seen


def test_errors_before_the_first_byte_keep_their_status(client):
    with pytest.raises(openai.InternalServerError) as info:
        client.responses.create(model="up/error-500", input="x", stream=True)
    assert info.value.status_code == 502 and info.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope-model", input="x")
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="up/text", input="x", tools=[{"type": "web_search"}])
    assert bad.value.param == "tools[0]"


@pytest.mark.parametrize("model", ["up/long-stream", "openresp/long-stream"])
def test_client_leaving_mid_stream_cancels_the_upstream(gateway, upstream, model):
    key = model.split("/")[1] + ":leave-" + uuid.uuid4().hex[:6]
    request_id = "resp-dc-" + uuid.uuid4().hex
    sock = rawhttp.post(
        gateway.port,
        "/v1/responses",
        {"model": model.split("/")[0] + "/" + key, "input": "hi", "stream": True},
        headers={"x-request-id": request_id},
    )
    seen = wait_for_request(upstream, key)
    assert b"response.created" in rawhttp.read_until(sock, b"response.output_text.delta")
    rawhttp.leave(sock, "close")
    assert seen.peer_closed.wait(1.0), "the upstream connection outlived the client"
    assert not seen.completed.is_set()
    line = gateway.log_line_for(request_id)
    assert "POST /v1/responses" in line and "disconnected=yes" in line and "stream=1" in line


def test_one_log_line_per_request_with_target_and_tokens(client, gateway):
    request_id = "resp-log-" + uuid.uuid4().hex
    client.responses.create(model="up/text", input="hi", extra_headers={"x-request-id": request_id})
    line = gateway.log_line_for(request_id)
    assert "status=200" in line and "target=up/text" in line and "tokens=9+6" in line
    assert gateway.log_text().count(f"id={request_id}") == 1
