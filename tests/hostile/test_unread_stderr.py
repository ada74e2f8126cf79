"""A supervisor that pipes stderr and never reads it must not be able to freeze the gateway.

Pipes hold about 64 KB; a synchronous write to a full one blocks the event loop."""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from tests import rawhttp
from tests.gateway import GatewayProcess, write_config

pytestmark = pytest.mark.slow


def test_the_gateway_serves_on_while_nobody_reads_its_stderr(tmp_path_factory):
    from tests.conftest import free_port

    tmp = tmp_path_factory.mktemp("unread-stderr")
    config = write_config(
        tmp,
        f"""
[retry]
attempts = 1

[providers.echo]
type = "echo"

[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
models = ["*"]
""",
    )
    gw = GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp, unread_stderr=True)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=gw.url, timeout=5) as client:
            # each failed attempt writes a line to stderr: 1,000 of them are well over 64 KB
            for i in range(1000):
                reply = client.post(
                    "/v1/chat/completions",
                    json={"model": f"dead/m{i}", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert reply.status_code == 502, reply.text
                assert time.monotonic() < deadline, f"request {i}: the gateway slowed to a crawl"
            for _ in range(50):  # and requests that used to write tracebacks
                rawhttp.send_raw(gw.port, b"GET /he\x1b[31mlth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=5)
            reply = client.post(
                "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "still there"}]}
            )
            assert reply.status_code == 200
            assert client.get("/health").status_code == 200
        gw.close_stdin()
        assert gw.wait(15) == 0  # and it still stops cleanly, its stderr full
        assert "stdin-eof" in str(gw.wait_event("stopping"))
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
        gw.proc.wait(5)
        if sys.platform != "win32" and gw.proc.stderr is not None:
            gw.proc.stderr.close()
