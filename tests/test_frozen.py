"""What only the frozen onefile binary has: a bootloader process above the gateway.

Runs when AI_GATEWAY_CMD names a frozen binary (CI sets it after `build/build.py`)."""

from __future__ import annotations

import os
import subprocess

import orjson
import pytest

from tests.gateway import GatewayProcess, gateway_command, pid_gone

COMMAND = gateway_command()
frozen_only = pytest.mark.skipif(
    not os.environ.get("AI_GATEWAY_CMD"), reason="needs the frozen binary (set AI_GATEWAY_CMD)"
)


@frozen_only
def test_killing_the_bootloader_ends_the_gateway_even_while_stdin_is_held(tmp_path):
    proc = subprocess.Popen(
        COMMAND + ["--port", "0", "--watch-stdin", "--log-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = orjson.loads(proc.stdout.readline())
        assert ready["pid"] != proc.pid, "not a onefile build: no bootloader process"
        proc.kill()  # SIGKILL to the bootloader; we keep holding the gateway's stdin
        proc.wait(5)
        assert pid_gone(ready["pid"], 5), "the Python child outlived its bootloader"
        assert orjson.loads(proc.stdout.readline()) == {"event": "stopping", "reason": "parent-exit"}
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()


@frozen_only
def test_previous_exit_reports_a_killed_bootloader(tmp_path):
    """The gateway outlives a killed bootloader only briefly and stops cleanly, yet nobody
    asked it to stop: the next run says so (code 0, reason parent-exit, bootloader_killed)."""
    proc = subprocess.Popen(
        COMMAND + ["--port", "0", "--watch-stdin", "--log-dir", str(tmp_path / "logs")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = orjson.loads(proc.stdout.readline())
        assert ready["pid"] != proc.pid, "not a onefile build: no bootloader process"
        proc.kill()
        proc.wait(5)
        assert pid_gone(ready["pid"], 10)
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
    with GatewayProcess(["--port", "0"], tmp=tmp_path) as gw:
        previous = gw.ready["previous_exit"]
    assert previous["pid"] == ready["pid"]
    assert previous["code"] == 0 and previous["reason"] == "parent-exit" and previous["bootloader_killed"] is True
    with GatewayProcess(["--port", "0"], tmp=tmp_path) as gw:  # after a stop the app asked for: nothing
        assert gw.ready["previous_exit"] is None
