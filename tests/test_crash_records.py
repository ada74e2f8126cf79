"""Crash sinks, exercised in real gateway processes with one fault injected each."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.gateway import ROOT, GatewayProcess
from tests.support import under_wine


def start_crashing(kind: str, log_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.crashing_gateway", kind, str(log_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def crash_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("crash-*.log"))


def wait_for(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_failure_in_the_serve_loop_exits_70_with_a_crash_file(tmp_path):
    proc = start_crashing("main", tmp_path)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 70
    events = [orjson.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "ready" and events[-1] == {"event": "fatal", "code": 70, "error": events[-1]["error"]}
    [crash] = crash_files(tmp_path)
    text = crash.read_text()
    assert "injected failure in the serve loop" in text and "Traceback" in text and "frozen:" in text
    last = orjson.loads((tmp_path / "last-exit.json").read_bytes())
    assert last["code"] == 70 and last["reason"] == "internal-error" and last["crash_file"] == str(crash)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("thread", "injected failure in a thread"),
        ("task", "injected failure in an orphaned task"),
    ],
)
def test_unhandled_error_in_a_thread_or_task_leaves_a_crash_file_and_keeps_serving(tmp_path, kind, words):
    proc = start_crashing(kind, tmp_path)
    assert orjson.loads(proc.stdout.readline())["event"] == "ready"
    assert wait_for(lambda: crash_files(tmp_path)), "no crash file"
    [crash] = crash_files(tmp_path)
    assert wait_for(lambda: words in crash.read_text())
    assert "Traceback" in crash.read_text()
    proc.stdin.close()
    assert proc.wait(15) == 0  # survived it
    last = orjson.loads((tmp_path / "last-exit.json").read_bytes())
    assert last["code"] == 0 and last["crash_file"] == str(crash)


@pytest.mark.skipif(under_wine(), reason="Wine 8: an access violation does not end the process the Windows way")
def test_native_crash_is_reported_by_the_next_run(tmp_path):
    proc = start_crashing("segfault", tmp_path)
    assert orjson.loads(proc.stdout.readline())["event"] == "ready"
    assert proc.wait(15) != 0  # killed by SIGSEGV (an access violation on Windows)
    with GatewayProcess(["--port", "0", "--log-dir", str(tmp_path)], tmp=tmp_path) as gw:
        previous = gw.ready["previous_exit"]
    assert previous["reason"] == "unclean" and previous["code"] is None
    crash = Path(previous["crash_file"])
    text = crash.read_text()
    assert ("Segmentation fault" in text or "access violation" in text) and "most recent call first" in text
