"""Retries and fallbacks through the real gateway: before the first byte only, and never
after the client left."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

from tests import rawhttp
from tests.conftest import free_port
from tests.gateway import GatewayProcess, write_config
from tests.support import collect, openai_provider, wait_for_request
from tests.upstream import Upstream


@pytest.fixture(scope="module")
def flaky():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def retrying(tmp_path_factory, upstream, flaky):
    tmp = tmp_path_factory.mktemp("retrying")
    config = write_config(
        tmp,
        f"""
[timeouts]
first_byte = 5

[retry]
attempts = 2
backoff_initial = 0.1
retry_after_max = 5

{openai_provider("up", upstream.base_url)}
[providers.flaky]
type = "openai"
base_url = "{flaky.base_url}"
models = ["flaky-model"]

[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
models = ["dead-model"]

[aliases]
resilient = ["flaky/503-then-close", "up/text:resilient"]
hopeless = ["dead/x", "up/error-500:hopeless"]
""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp) as gw:
        yield gw


@pytest.fixture
def sdk(retrying):
    with openai.OpenAI(base_url=retrying.url + "/v1", api_key="x", max_retries=0) as client:
        yield client


def test_alias_survives_a_target_that_answers_503_then_refuses(sdk, retrying, upstream, flaky):
    raw = sdk.chat.completions.with_raw_response.create(model="resilient", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content == "Hello! 你好 👋"
    assert raw.headers["x-gateway-target"] == "up/text:resilient"
    assert len(flaky.requests_for("503-then-close")) == 1  # the retry was refused at connect
    line = retrying.log_line_for(raw.headers["x-request-id"])
    assert "attempts=3" in line and "target=up/text:resilient" in line


def test_429_with_retry_after_is_retried_then_served(sdk, upstream):
    key = f"429-once:{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    reply = sdk.chat.completions.create(model=f"up/{key}", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello! 你好 👋"
    assert len(upstream.requests_for(key)) == 2
    assert time.monotonic() - started >= 0.2  # retry-after was honoured


def test_a_stream_failing_after_its_first_byte_is_not_retried(sdk, retrying, upstream):
    key = f"reset-mid-stream:{uuid.uuid4().hex[:8]}"
    rid = "no-retry-" + uuid.uuid4().hex
    with pytest.raises(openai.APIError):
        collect(
            sdk.chat.completions.create(
                model=f"up/{key}",
                stream=True,
                extra_headers={"x-request-id": rid},
                messages=[{"role": "user", "content": "hi"}],
            )
        )
    line = retrying.log_line_for(rid)  # written once the request is over: no retry can follow
    assert "attempts=" not in line, line
    assert len(upstream.requests_for(key)) == 1


def test_when_everything_fails_the_last_error_comes_back_with_should_retry_false(sdk):
    with pytest.raises(openai.InternalServerError) as info:
        sdk.chat.completions.create(model="hopeless", messages=[{"role": "user", "content": "hi"}])
    assert "The server had an error" in info.value.message
    assert info.value.response.headers["x-should-retry"] == "false"


def test_client_leaving_during_backoff_never_reaches_the_next_target(tmp_path, upstream):
    key = uuid.uuid4().hex[:8]
    config = write_config(
        tmp_path,
        f"""
[retry]
attempts = 2
retry_after_max = 5

{openai_provider("up", upstream.base_url)}
[aliases]
chain = ["up/429-slow:{key}", "up/text:{key}"]
""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp_path) as gw:
        rid = "backoff-" + key
        sock = rawhttp.post(
            gw.port,
            "/v1/chat/completions",
            {"model": "chain", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-request-id": rid},
        )
        wait_for_request(upstream, f"429-slow:{key}")
        time.sleep(0.2)  # into the 2 s backoff that retry-after asked for
        rawhttp.abort(sock)
        line = gw.log_line_for(rid)  # written when the request ended: nothing can follow it
        assert "disconnected=yes" in line and "target=up/429-slow" in line, line
        assert len(upstream.requests_for(f"429-slow:{key}")) == 1
        assert upstream.requests_for(f"text:{key}") == []


def test_the_log_line_names_the_attempts_and_target_when_every_try_failed(retrying):
    rid = "hopeless-" + uuid.uuid4().hex
    reply = httpx.post(
        retrying.url + "/v1/chat/completions",
        headers={"x-request-id": rid},
        timeout=30,
        json={"model": "hopeless", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 502
    line = retrying.log_line_for(rid)
    assert "attempts=4" in line and "target=up/error-500:hopeless" in line, line


def test_the_log_line_names_the_target_when_the_client_left_before_the_answer(retrying, upstream):
    rid = "left-" + uuid.uuid4().hex
    model = f"hang-before-headers:{rid}"
    sock = rawhttp.post(
        retrying.port,
        "/v1/chat/completions",
        {"model": f"up/{model}", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-request-id": rid},
    )
    deadline = time.monotonic() + 5
    while not upstream.requests_for(model) and time.monotonic() < deadline:
        time.sleep(0.01)
    sock.close()
    line = retrying.log_line_for(rid)
    assert "disconnected=yes" in line and f"target=up/{model}" in line, line
