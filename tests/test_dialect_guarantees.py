"""The chat route's guarantees hold on the other dialects' routes and the new providers:
timeouts before and after the first byte, credentials masked in every error shape, the
upstream cancelled when the client leaves (Gemini's stream too)."""

from __future__ import annotations

import uuid

import anthropic
import openai
import pytest

from tests import rawhttp
from tests.conftest import UPSTREAM_KEY
from tests.test_disconnects import wait_for_request

pytestmark = pytest.mark.usefixtures("leak_guard")


@pytest.fixture
def claude(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as c:
        yield c


def test_first_byte_timeout_is_504_in_anthropic_shape(claude):
    with pytest.raises(anthropic.InternalServerError) as info:
        claude.messages.create(
            model="up/hang-before-headers", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 504 and info.value.body["error"]["type"] == "timeout_error"


def test_idle_timeout_mid_stream_is_an_in_band_failure(client):
    seen = []
    with pytest.raises(openai.APIError) as info:
        for event in client.responses.create(model="up/hang-mid-stream", input="x", stream=True):
            seen.append(event.type)
    assert "silent" in info.value.message and "response.failed" in seen


def test_credentials_an_upstream_repeats_are_masked(client, claude):
    with pytest.raises(anthropic.AuthenticationError) as messages:
        claude.messages.create(model="up/quote-key", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError) as responses:
        client.responses.create(model="up/quote-key", input="x")
    for error in (messages.value, responses.value):
        assert "Incorrect API key provided" in error.response.text
        assert UPSTREAM_KEY not in error.response.text


def test_client_leaving_a_gemini_stream_cancels_the_upstream(gateway, upstream):
    key = "long-stream:leave-" + uuid.uuid4().hex[:6]
    request_id = "gem-dc-" + uuid.uuid4().hex
    sock = rawhttp.post(
        gateway.port,
        "/v1/chat/completions",
        {"model": f"gem/{key}", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-request-id": request_id},
    )
    seen = wait_for_request(upstream, key)
    rawhttp.read_until(sock, b"Hello!")
    rawhttp.leave(sock, "close")
    assert seen.peer_closed.wait(1.0), "the upstream connection outlived the client"
    assert not seen.completed.is_set()
    assert "disconnected=yes" in gateway.log_line_for(request_id)
