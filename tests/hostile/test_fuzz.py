"""Hypothesis against every route of a real gateway process: whatever a client sends, the
answer is a well-formed OpenAI success or error, never a 5xx for the client's mistake,
never a dropped connection.

    FUZZ_EXAMPLES=5000 python -m pytest tests/hostile/test_fuzz.py
"""

from __future__ import annotations

import json
import os

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway import GatewayProcess, write_config

pytestmark = pytest.mark.slow  # skipped by the quick loop (-m "not slow"); CI runs it

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "wizard", "", None])
content = st.one_of(
    st.text(max_size=40),
    st.none(),
    st.integers(),
    st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"]), "text": st.text(max_size=10)}),
        max_size=3,
    ),
    json_values,
)
messages = st.one_of(
    st.lists(st.fixed_dictionaries({"role": roles, "content": content}), min_size=0, max_size=4),
    json_values,
)
chat_bodies = st.fixed_dictionaries(
    {"model": st.one_of(st.sampled_from(["echo", "fast", "up/x", "nope"]), json_values)},
    optional={
        "messages": messages,
        "stream": st.one_of(st.booleans(), json_values),
        "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": st.booleans()}), json_values),
        "max_tokens": json_values,
        "temperature": json_values,
        "tools": json_values,
        "stop": json_values,
        "n": json_values,
        "tool_choice": json_values,
        "extra": json_values,
    },
)
embedding_bodies = st.fixed_dictionaries(
    {"model": st.one_of(st.just("echo"), json_values)}, optional={"input": json_values}
)
response_items = st.one_of(
    st.fixed_dictionaries({"role": roles, "content": content}, optional={"type": st.just("message")}),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "call_id": st.one_of(st.text(max_size=8), json_values),
            "name": st.one_of(st.text(max_size=8), json_values),
            "arguments": json_values,
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call_output"), "call_id": st.text(max_size=8), "output": json_values}
    ),
    json_values,
)
function_tools = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["function", "web_search"]), "name": st.text(max_size=8)},
        optional={"parameters": json_values},
    ),
    max_size=2,
)
responses_bodies = st.fixed_dictionaries(
    {"model": st.one_of(st.sampled_from(["echo", "fast", "nope"]), json_values)},
    optional={
        "input": st.one_of(st.text(max_size=30), st.lists(response_items, max_size=4), json_values),
        "instructions": st.one_of(st.text(max_size=20), json_values),
        "stream": st.one_of(st.booleans(), json_values),
        "tools": st.one_of(function_tools, json_values),
        "tool_choice": json_values,
        "text": st.one_of(st.fixed_dictionaries({"format": json_values}), json_values),
        "previous_response_id": st.one_of(st.text(max_size=10), json_values),
        "store": json_values,
        "max_output_tokens": json_values,
        "temperature": json_values,
    },
)
anthropic_blocks = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "document", "x"])},
            optional={
                "text": json_values,
                "source": json_values,
                "input": json_values,
                "content": json_values,
                "id": json_values,
                "tool_use_id": json_values,
            },
        ),
        json_values,
    ),
    max_size=3,
)
messages_bodies = st.fixed_dictionaries(
    {"model": st.one_of(st.sampled_from(["echo", "fast", "nope"]), json_values)},
    optional={
        "messages": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.sampled_from(["user", "assistant", "system", ""]),
                        "content": st.one_of(st.text(max_size=20), anthropic_blocks, json_values),
                    }
                ),
                max_size=4,
            ),
            json_values,
        ),
        "max_tokens": json_values,
        "system": st.one_of(st.text(max_size=20), anthropic_blocks, json_values),
        "stream": st.one_of(st.booleans(), json_values),
        "tools": json_values,
        "tool_choice": json_values,
        "stop_sequences": json_values,
        "metadata": json_values,
        "temperature": json_values,
    },
)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """Only offline providers: any 5xx is then the gateway's own fault."""
    tmp = tmp_path_factory.mktemp("fuzz")
    config = write_config(
        tmp,
        """
[providers.echo]
type = "echo"

[aliases]
fast = ["echo"]
""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as http:
            yield gw, http


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:300]
    assert response.headers.get("x-request-id")
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        assert response.text.endswith("data: [DONE]\n\n")
        return
    body = response.json()
    if response.status_code >= 400:
        error = body["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str) and "param" in error and "code" in error
    else:
        assert isinstance(body, dict)


@FUZZ
@given(body=chat_bodies)
def test_chat_bodies(fuzzed, body):
    gw, http = fuzzed
    check(http.post("/v1/chat/completions", content=json.dumps(body), headers={"content-type": "application/json"}))


@FUZZ
@given(body=embedding_bodies)
def test_embedding_bodies(fuzzed, body):
    gw, http = fuzzed
    check(http.post("/v1/embeddings", content=json.dumps(body), headers={"content-type": "application/json"}))


def check_responses(response: httpx.Response) -> None:
    """A Responses stream ends with its completion event; anything else is a checked answer."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        assert response.status_code == 200 and response.headers.get("x-request-id")
        assert response.text.rstrip("\n").rsplit("\n\n", 1)[-1].startswith("event: response.completed")
        return
    check(response)


def check_messages(response: httpx.Response) -> None:
    """An Anthropic stream ends with message_stop; errors are in Anthropic's shape."""
    assert response.status_code < 500, response.text[:300]
    assert response.headers.get("x-request-id")
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        assert response.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return
    body = response.json()
    if response.status_code >= 400:
        assert body["type"] == "error" and isinstance(body["error"]["type"], str)
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    else:
        assert body["type"] == "message"


@FUZZ
@given(body=responses_bodies)
def test_responses_bodies(fuzzed, body):
    gw, http = fuzzed
    check_responses(http.post("/v1/responses", content=json.dumps(body), headers={"content-type": "application/json"}))


@FUZZ
@given(body=messages_bodies)
def test_messages_bodies(fuzzed, body):
    gw, http = fuzzed
    check_messages(http.post("/v1/messages", content=json.dumps(body), headers={"content-type": "application/json"}))


@FUZZ
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded"]
    ),
    path=st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/admin/reload"]),
)
def test_raw_bytes(fuzzed, raw, content_type, path):
    gw, http = fuzzed
    headers = {"content-type": content_type} if content_type else {}
    check(http.post(path, content=raw, headers=headers))


@FUZZ
@given(
    name=st.sampled_from(
        [
            "authorization",
            "origin",
            "host",
            "x-request-id",
            "content-type",
            "accept",
            "x-stainless-os",
            "access-control-request-headers",
        ]
    ),
    value=header_values,
    method=st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(
        [
            "/health",
            "/v1/models",
            "/v1/models/echo",
            "/v1/chat/completions",
            "/v1/embeddings",
            "/nope",
            "/v1/models/%2F%2F",
        ]
    ),
)
def test_headers_methods_paths(fuzzed, name, value, method, path):
    gw, http = fuzzed
    body = orjson.dumps({"model": "echo", "messages": [{"role": "user", "content": "x"}]})
    headers = {"content-type": "application/json", name: value}
    response = http.request(method, path, content=body if method in ("POST", "PUT", "PATCH") else None, headers=headers)
    if response.status_code == 204:  # an allowed preflight has no body
        return
    check(response)
