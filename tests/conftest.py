from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.gateway import GatewayProcess, write_config
from tests.upstream import Upstream

UPSTREAM_KEY = "sk-test-upstream-key-1234"


def free_port() -> int:
    """A port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def upstream() -> Upstream:
    server = Upstream().start()
    yield server
    server.stop()


def main_config(upstream_url: str, upstream_root: str, dead_port: int) -> str:
    python = sys.executable.replace("\\", "/")
    fake_model = str(Path(__file__).parent / "helpers" / "fake_model.py").replace("\\", "/")
    return f"""
[server]
max_body_mb = 1

[timeouts]
connect = 2
first_byte = 3
idle = 2
heartbeat = 0.5

[retry]
attempts = 1

[providers.echo]
type = "echo"

[providers.up]
type = "openai"
base_url = "{upstream_url}"
api_key = "${{UPSTREAM_KEY}}"
models = ["gpt-4o-mini", "text-embedding-3-small"]

[providers.claude]
type = "anthropic"
base_url = "{upstream_root}"
api_key = "${{UPSTREAM_KEY}}"
models = ["claude-*"]

[providers.openresp]
type = "openai"
base_url = "{upstream_url}"
api_key = "${{UPSTREAM_KEY}}"
responses = true
models = ["gpt-4o-resp"]

[providers.gem]
type = "gemini"
base_url = "{upstream_root}/v1beta"
api_key = "${{UPSTREAM_KEY}}"
models = ["gemini-*"]

[providers.az]
type = "azure"
base_url = "{upstream_root}"
api_key = "${{UPSTREAM_KEY}}"
models = ["gpt-4o-az"]

[providers.azv1]
type = "azure"
base_url = "{upstream_root}/openai/v1"
api_key = "${{UPSTREAM_KEY}}"
models = ["gpt-4o-azv1"]

[providers.local]
type = "process"
command = ["{python}", "{fake_model}"]
models = ["words", "split-utf8", "crash", "crash-early", "slow", "with-child", "flood", "hang", "silent-exit",
          "console"]
max_concurrency = 8

[providers.quick]
type = "process"
command = ["{python}", "-c", "print('hi')"]
models = ["quick"]

[providers.echobin]
type = "process"
command = ["/bin/echo", "hi"]
models = ["echobin"]

[providers.quickfail]
type = "process"
command = ["{python}", "-c", "import sys; sys.exit(3)"]
models = ["quickfail"]

[providers.localj]
type = "process"
command = ["{python}", "{fake_model}"]
output = "jsonl"
models = ["jsonl", "jsonl-error", "jsonl-tools"]

[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
models = ["dead-model"]

[aliases]
fast = ["up/text", "echo"]
mixed = ["up/error-503", "claude/text"]
"""


@pytest.fixture(scope="session")
def gateway(upstream: Upstream, tmp_path_factory) -> GatewayProcess:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    config = write_config(tmp, main_config(upstream.base_url, upstream.root_url, free_port()))
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp, env={"UPSTREAM_KEY": UPSTREAM_KEY}) as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayProcess):
    from openai import OpenAI

    with OpenAI(base_url=gateway.url + "/v1", api_key="not-needed", max_retries=0, timeout=20) as c:
        yield c


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(tmp_path_factory):
    """After the whole session: no log, crash file or stderr capture holds a secret."""
    yield
    from tests.support import GATEWAY_TOKEN as TOKEN

    base = tmp_path_factory.getbasetemp()
    leaks = []
    for path in base.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".txt", ".json") or path.name.startswith("gateway.log"):
            data = path.read_bytes()
            for secret in (UPSTREAM_KEY, TOKEN):
                if secret.encode() in data:
                    leaks.append(f"{path}: {secret[:6]}...")
    assert not leaks, "secrets found in logs:\n" + "\n".join(leaks)


def gateway_counts(gw: GatewayProcess, upstream: Upstream) -> dict[str, int]:
    import httpx

    stats = httpx.get(gw.url + "/admin/stats", timeout=5).json()
    counts = {
        "inflight requests": stats["inflight_requests"],
        "asyncio tasks": stats["asyncio_tasks"],
        "upstream requests open": upstream.busy_connections,
        # checked out of the pool: an upstream response nobody reads and nobody closed
        "upstream connections in use": (stats["upstream_pool"] or {}).get("active", 0),
    }
    if stats["open_fds"] is not None:
        # each upstream connection is one descriptor; idle ones may stay pooled, the rest may
        # not. The gateway's own pool says how many it holds (the upstream's count would
        # include the connections of the other gateways the tests start and stop)
        pool = stats["upstream_pool"] or {}
        counts["descriptors besides upstream"] = stats["open_fds"] - pool.get("active", 0) - pool.get("idle", 0)
    return counts


@pytest.fixture(scope="module")
def leak_guard(gateway: GatewayProcess, upstream: Upstream):
    """Fails the module if it left the shared gateway with more requests in flight, tasks,
    descriptors or open upstream requests than it found."""
    import time

    import httpx

    httpx.get(gateway.url + "/health")
    time.sleep(0.2)
    before = gateway_counts(gateway, upstream)
    yield
    deadline = time.monotonic() + 10
    while True:
        after = gateway_counts(gateway, upstream)
        grown = {k: (before[k], after[k]) for k in after if after[k] > before[k]}
        if not grown or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not grown, f"left behind (before, after): {grown}"
