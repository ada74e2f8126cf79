"""The `openai` npm SDK and the Vercel AI SDK inside the engines Tauri runs in, against a
real gateway (token set, built-in Tauri origins only) and a real upstream.

Expected answers come from the upstream's recorded transcripts, not from this file.
"""

from __future__ import annotations

import json
import time
import uuid

import orjson
import pytest

from tests.browser.conftest import BROWSER_TOKEN
from tests.upstream import Seen, Upstream, sse_events, transcript

pytestmark = pytest.mark.timeout(300)


def recorded_text() -> str:
    return orjson.loads(transcript("openai_text.json"))["choices"][0]["message"]["content"]


def recorded_stream_text() -> str:
    text = ""
    for event in sse_events("openai_text.sse"):
        data = event.decode().strip().removeprefix("data: ")
        if data != "[DONE]":
            for choice in orjson.loads(data)["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def recorded_tool_call() -> tuple[str, dict]:
    call = orjson.loads(transcript("openai_tools.json"))["choices"][0]["message"]["tool_calls"][0]
    return call["function"]["name"], json.loads(call["function"]["arguments"])


@pytest.fixture(scope="module")
def sdk_page(engine):
    """The engine, showing the SDK page at its Tauri origin."""
    engine.open(engine.page_url)
    engine.wait_for("document.title === 'ready' ? 'yes' : ''")
    return engine


def run(engine, browser_gateway, scenario: str, model: str, api_key: str = BROWSER_TOKEN) -> dict:
    options = json.dumps({"baseURL": browser_gateway.url, "apiKey": api_key, "model": model})
    return json.loads(engine.evaluate(f"window.gatewayTests.run({json.dumps(scenario)}, {options})", timeout=60))


def test_the_page_has_the_tauri_origin(sdk_page):
    expected = "tauri://localhost" if sdk_page.name == "webkitgtk" else "http://tauri.localhost"
    assert sdk_page.evaluate("window.gatewayTests.origin") == expected


def test_openai_sdk_whole_answer(sdk_page, browser_gateway):
    result = run(sdk_page, browser_gateway, "openai.whole", "up/text")
    assert result.get("text") == recorded_text(), result
    assert result["finishReason"] == "stop"
    # the page can read these only because the gateway exposes them to scripts
    assert result["target"] == "up/text"
    assert result["requestId"] and browser_gateway.log_line_for(result["requestId"])


def test_openai_sdk_streamed_answer(sdk_page, browser_gateway):
    result = run(sdk_page, browser_gateway, "openai.stream", "up/text")
    assert result.get("text") == recorded_stream_text(), result
    assert result["chunks"] > 2 and result["finishReason"] == "stop"


def test_openai_sdk_tool_calls(sdk_page, browser_gateway):
    name, arguments = recorded_tool_call()
    result = run(sdk_page, browser_gateway, "openai.tools", "up/tools")
    assert result.get("finishReason") == "tool_calls", result
    [call] = result["toolCalls"]
    assert call["name"] == name and json.loads(call["arguments"]) == arguments and call["id"]


def test_vercel_ai_sdk_whole_answer(sdk_page, browser_gateway):
    result = run(sdk_page, browser_gateway, "vercel.whole", "up/text")
    assert result.get("text") == recorded_text(), result
    assert result["finishReason"] == "stop"


def test_vercel_ai_sdk_streamed_answer(sdk_page, browser_gateway):
    result = run(sdk_page, browser_gateway, "vercel.stream", "up/text")
    assert result.get("text") == recorded_stream_text(), result
    assert result["parts"] > 1


def test_vercel_ai_sdk_tool_calls(sdk_page, browser_gateway):
    name, arguments = recorded_tool_call()
    result = run(sdk_page, browser_gateway, "vercel.tools", "up/tools")
    assert result.get("finishReason") == "tool-calls", result
    [call] = result["toolCalls"]
    assert call["name"] == name and call["input"] == arguments


@pytest.mark.parametrize(
    ("scenario", "error_class"), [("openai.error", "AuthenticationError"), ("vercel.error", "APICallError")]
)
def test_a_wrong_token_is_a_401_error(sdk_page, browser_gateway, scenario, error_class):
    result = run(sdk_page, browser_gateway, scenario, "up/text", api_key="not-the-token")
    assert result.get("error") is True, result
    assert result["status"] == 401 and result["name"] == error_class, result
    assert "token" in result["message"].lower()


def upstream_request(upstream: Upstream, model: str, timeout: float = 5) -> Seen:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for seen in list(upstream.seen):
            if seen.model == model:
                return seen
        time.sleep(0.01)
    raise AssertionError(f"the upstream never saw {model}")


ABORTS = 10  # a browser's choice to drain or close an aborted connection depends on timing


def test_abort_mid_stream_closes_the_upstream_connection_within_100_ms(sdk_page, browser_gateway, upstream):
    for attempt in range(ABORTS):
        model = f"slow-drip:abort-{sdk_page.name}-{uuid.uuid4().hex[:8]}"
        result = run(sdk_page, browser_gateway, "openai.abort", "up/" + model)
        assert result.get("chunks") == 1 and result["abortedAt"], result
        seen = upstream_request(upstream, model)
        assert seen.peer_closed.wait(5), f"abort {attempt + 1}: the upstream connection stayed open"
        assert not seen.completed.is_set()
        waited_ms = seen.peer_closed_at * 1000 - result["abortedAt"]
        assert waited_ms < 100, f"abort {attempt + 1}: the upstream connection closed {waited_ms:.0f} ms after it"


@pytest.mark.parametrize("scenario", ["openai.whole", "vercel.whole"])
def test_a_page_from_a_foreign_origin_is_refused(engine, page_server, browser_gateway, scenario):
    engine.open(page_server.foreign_url)
    try:
        engine.wait_for("document.title === 'ready' ? 'yes' : ''")
        origin = engine.evaluate("window.gatewayTests.origin")
        assert origin == f"http://127.0.0.1:{page_server.port}"
        refusal = f"Origin '{origin}' is not allowed"
        refusals_before = browser_gateway.log_text().count(refusal)
        result = run(engine, browser_gateway, scenario, "up/text")
        # the browser hides a refused CORS answer from the script: a failed fetch
        assert result.get("error") is True and result.get("status") is None, result
        deadline = time.monotonic() + 5
        while browser_gateway.log_text().count(refusal) <= refusals_before:
            assert time.monotonic() < deadline, "the gateway log shows no refusal of the foreign origin"
            time.sleep(0.05)
    finally:
        engine.open(engine.page_url)
        engine.wait_for("document.title === 'ready' ? 'yes' : ''")
