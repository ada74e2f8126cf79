"""The status page's data (GET /admin/status) from a real gateway, and its ring of the
last requests as a unit."""

from __future__ import annotations

import os
import signal
import sys
import time

import httpx
import pytest

from app.server.accounting import RequestRecord
from app.server.recent import RecentRequests
from tests.conftest import UPSTREAM_KEY
from tests.gateway import GatewayProcess, write_config


def finished(path: str = "/v1/chat/completions", **fields) -> RequestRecord:
    record = RequestRecord.start("req-1", "POST", path)
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_the_ring_keeps_the_last_fifty_newest_first():
    ring = RecentRequests()
    for i in range(60):
        ring.add(finished(request_id=f"req-{i}"), 1.0)
    ids = [r["request_id"] for r in ring.newest_first()]
    assert ids == [f"req-{i}" for i in range(59, 9, -1)]


def test_the_ring_records_what_the_log_line_holds():
    ring = RecentRequests()
    ring.add(
        finished(
            model="fast",
            target="up/text",
            status=200,
            stream=True,
            first_byte_ms=12.345,
            prompt_tokens=9,
            completion_tokens=6,
            disconnected=True,
            error=None,
        ),
        50.04,
    )
    [entry] = ring.newest_first()
    assert {k: entry[k] for k in ("model", "target", "status", "stream", "ms", "ttfb_ms", "tokens", "client_left")} == {
        "model": "fast",
        "target": "up/text",
        "status": 200,
        "stream": True,
        "ms": 50.0,
        "ttfb_ms": 12.3,
        "tokens": {"prompt": 9, "completion": 6},
        "client_left": True,
    }
    assert entry["time"].endswith("+00:00")


@pytest.mark.parametrize("path", ["/", "/admin/status"])
def test_the_status_page_itself_is_not_recorded(path):
    ring = RecentRequests()
    ring.add(finished(path=path), 1.0)
    assert ring.newest_first() == []


def status(gw: GatewayProcess) -> dict:
    response = httpx.get(gw.url + "/admin/status", timeout=10)
    assert response.status_code == 200
    return response.json()


def test_status_data_from_a_running_gateway(gateway, upstream):
    chat = httpx.post(
        gateway.url + "/v1/chat/completions",
        timeout=10,
        json={"model": "up/text", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200
    rid = chat.headers["x-request-id"]
    data = status(gateway)
    assert data["version"] == gateway.ready["version"] and data["pid"] == gateway.pid
    assert data["url"] == gateway.url and data["log_dir"] == gateway.ready["log_dir"]
    assert data["config"].endswith(".toml") and data["uptime_s"] > 0
    assert data["inflight"] == 0 and data["previous_exit"] is None and data["token_required"] is False
    providers = {p["name"]: p for p in data["providers"]}
    assert providers["up"]["enabled"] and providers["up"]["type"] == "openai"
    assert providers["dead"]["missing_env"] == []
    assert data["aliases"]["fast"] == ["up/text", "echo"]  # the session gateway's aliases, as configured
    model_ids = [m["id"] for m in data["models"]]
    assert model_ids[0] == "fast" and "gpt-4o-mini" in model_ids
    entry = next(r for r in data["recent"] if r["request_id"] == rid)
    assert entry["status"] == 200 and entry["model"] == "up/text"
    assert entry["target"] == chat.headers["x-gateway-target"]
    assert entry["tokens"] == {
        "prompt": chat.json()["usage"]["prompt_tokens"],
        "completion": chat.json()["usage"]["completion_tokens"],
    }
    assert all(r["path"] not in ("/", "/admin/status") for r in data["recent"])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_status_shows_disabled_providers_masks_secrets_and_reports_the_previous_exit(tmp_path, upstream):
    config = write_config(
        tmp_path,
        f"""
[providers.up]
type = "openai"
base_url = "{upstream.base_url}"
api_key = "${{UPSTREAM_KEY}}"
models = ["*"]

[providers.claude]
type = "anthropic"
api_key = "${{NOT_SET_ANTHROPIC_KEY}}"
models = ["claude-*"]
""",
    )
    args = ["--port", "0", "--config", str(config)]
    env = {"UPSTREAM_KEY": UPSTREAM_KEY}
    first = GatewayProcess(args, tmp=tmp_path, env=env)
    os.kill(first.pid, signal.SIGKILL)  # the gateway itself (a onefile build's child) dies without a word
    first.stop()
    with GatewayProcess(args, tmp=tmp_path, env=env) as gw:
        leaky = "sk-proj-LeakyStatusModel1234"
        httpx.post(
            gw.url + "/v1/chat/completions",
            timeout=10,
            json={"model": "up/error-401", "messages": [{"role": "user", "content": "hi"}]},
        )
        httpx.post(
            gw.url + "/v1/chat/completions",
            timeout=10,
            json={"model": leaky, "messages": [{"role": "user", "content": "hi"}]},
        )
        deadline = time.monotonic() + 5
        while len((data := status(gw))["recent"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert data["previous_exit"]["reason"] == "unclean"
        claude = next(p for p in data["providers"] if p["name"] == "claude")
        assert claude["enabled"] is False and claude["missing_env"] == ["NOT_SET_ANTHROPIC_KEY"]
        text = httpx.get(gw.url + "/admin/status", timeout=10).text
        assert UPSTREAM_KEY not in text and leaky not in text and "[REDACTED]" in text
