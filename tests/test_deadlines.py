"""The request's deadlines through the real gateway, where they meet a slow client and an
upstream that has finished: `total` cuts a stream with the timeout it is, and a whole
answer is never turned into one."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import orjson
import pytest

from tests.gateway import GatewayProcess, write_config
from tests.support import collect, openai_provider, wait_for_request
from tests.upstream import Upstream

TOTAL = 2.0


@pytest.fixture(scope="module")
def strict(tmp_path_factory, upstream: Upstream):
    tmp = tmp_path_factory.mktemp("deadlines")
    config = write_config(
        tmp,
        f"""
[timeouts]
first_byte = 5
idle = 0.2
total = {TOTAL}
heartbeat = 0

{openai_provider("up", upstream.base_url)}
""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp) as gw:
        yield gw


def test_an_answer_whose_body_never_ends_still_ends_with_done(strict, upstream):
    """The upstream sends its last event and [DONE], then never ends its body: the end is
    waited for (0.25 s, so that the connection can be reused), longer than `idle` here. The
    answer is whole: the client gets [DONE], not a timeout."""
    with openai.OpenAI(base_url=strict.url + "/v1", api_key="x", max_retries=0) as sdk:

        def answer(model: str) -> tuple[str, list]:
            messages = [{"role": "user", "content": "hi"}]
            return collect(sdk.chat.completions.create(model=model, messages=messages, stream=True))

        text, chunks = answer(f"up/never-ends:{uuid.uuid4().hex[:8]}")  # an SDK error fails the test here
        whole, _ = answer("up/text")  # the same events, from a body that ends
    assert text == whole and any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_total_running_out_while_the_client_reads_slowly_is_a_timeout(strict, upstream):
    """A fast upstream and a client that stops reading past `total`: the relay waits on
    the client meanwhile, not on the upstream. When the client reads again, the stream
    ends with an `upstream_timeout` that names the total, and the upstream is closed."""
    key = f"flood:{uuid.uuid4().hex[:8]}"
    body = {"model": f"up/{key}", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", strict.url + "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        time.sleep(TOTAL + 0.5)  # reads nothing: every buffer on the way fills
        last = b""
        for line in response.iter_lines():
            if line.startswith("data: "):
                last = line.encode()
    assert last != b"data: [DONE]"
    error = orjson.loads(last[len(b"data: ") :])["error"]
    assert error["code"] == "upstream_timeout", error
    assert f"total time ({TOTAL:g} s)" in error["message"]
    seen = wait_for_request(upstream, key)
    assert seen.peer_closed.wait(5), "the upstream's connection was left open"
