"""What a client controls never reaches a log line or a header raw: no forged lines, no
terminal escapes, no field posing as another; and naming many models costs bounded memory."""

from __future__ import annotations

import shlex
import uuid

import httpx
import pytest

from tests.gateway import GatewayProcess, write_config
from tests.support import openai_provider

pytestmark = pytest.mark.usefixtures("leak_guard")

FORGED = "status=200 ms=1.0 disconnected=no"

# name -> a model id a client may send
MODELS = {
    "newline": "up/text\n2026-01-01 00:00:00.000 | INFO    | request | request id=forged " + FORGED,
    "carriage return": "up/text\r" + FORGED,
    "escape sequence": "up/text\x1b[2J\x1b[31mred",
    "line separator": "up/text\u2028" + FORGED,
    "bidi override": "up/text\u202egnp.exe",
    "space and equals": "up/text " + FORGED,
    "unknown, with a newline": "nowhere\n" + FORGED,
}


def _is_raw_unsafe(text: str) -> bool:
    return any(c in text for c in "\n\r\x1b\u2028\u202e")


@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_name_cannot_forge_log_lines_or_headers(gateway, name):
    rid = "inject-" + uuid.uuid4().hex
    before = gateway.log_text().count("\n")
    reply = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"x-request-id": rid},
        timeout=10,
        json={"model": MODELS[name], "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code in (200, 404), reply.text
    target = reply.headers.get("x-gateway-target", "")
    assert target.isascii() and target.isprintable(), repr(target)
    line = gateway.log_line_for(rid)
    assert not _is_raw_unsafe(line), repr(line)
    fields = shlex.split(line.split(" | request | ", 1)[1])  # quoted values stay one field
    for key in ("id=", "status=", "ms=", "disconnected="):
        assert sum(f.startswith(key) for f in fields) == 1, (key, fields)
    after = gateway.log_text()
    assert not any(line.startswith("2026-01-01") for line in after.splitlines()), "a forged line"
    assert not any(c in after for c in "\x1b\u2028\u202e")
    # one request, one line (other tests' lines may interleave, never this one's pieces)
    assert after.count(rid) == 1
    assert after.count("\n") > before


def test_many_failing_model_names_take_bounded_memory(tmp_path_factory, upstream):
    """Every distinct failing target used to be remembered until that exact name succeeded."""
    tmp = tmp_path_factory.mktemp("bounded")
    config = write_config(
        tmp,
        f"""
[retry]
attempts = 1

{openai_provider("up", upstream.base_url)}""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp) as gw, httpx.Client(timeout=10) as c:

        def failing(count: int) -> None:
            for _ in range(count):
                model = "up/error-500:" + uuid.uuid4().hex + "x" * 200
                reply = c.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                )
                assert reply.status_code == 502, reply.text

        # warm up: pools, caches, allocator arenas, and the cooldown bookkeeping filled to its
        # bound (1,024); Windows' working set settles only after about 1,500 requests
        failing(1500)
        rss_before = c.get(gw.url + "/admin/stats").json()["rss_mb"]
        failing(1500)
        stats = c.get(gw.url + "/admin/stats").json()
        assert stats["cooldown_targets"] <= 1024, stats
        if rss_before is not None:
            assert stats["rss_mb"] - rss_before < 8, (rss_before, stats["rss_mb"])
        longest = max(len(line) for line in gw.log_text().splitlines())
        assert longest < 2000, longest
