"""Standard streams that cannot kill the gateway: missing ones, legacy code pages."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.gateway import ROOT, GatewayProcess
from tests.support import stream_echo

TEXT = "你好 世界 😀 Ünïcödé ✓"


def test_missing_stdout_and_stderr_still_give_a_ready_line_and_serve(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.no_stdio", "--port", "0", "--watch-stdin", "--log-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    ready = orjson.loads(proc.stdout.readline())
    assert ready["event"] == "ready"
    assert stream_echo(ready["url"], TEXT) == TEXT
    proc.stdin.close()
    assert proc.wait(15) == 0


def test_legacy_code_page_streams_unicode_and_logs_it_as_utf8(tmp_path):
    gw = GatewayProcess(["--port", "0"], tmp=tmp_path, env={"PYTHONIOENCODING": "cp936"})
    assert stream_echo(gw.url, TEXT) == TEXT
    gw.proc.stdin.write(f"hello {TEXT}\n".encode())  # an unknown command: echoed in a warning
    gw.proc.stdin.flush()
    gw.close_stdin()
    assert gw.wait() == 0
    gw.stop()
    assert TEXT in gw.stderr_path.read_bytes().decode("utf-8")
