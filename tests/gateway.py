"""Start the real gateway as a separate process, as a supervisor would, and talk to it.

`AI_GATEWAY_CMD` selects the command under test (the frozen binary, say); the default is
this source tree's `python -m app`.
"""

from __future__ import annotations

import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from tests.support import under_wine

ROOT = Path(__file__).resolve().parent.parent


def gateway_command() -> list[str]:
    custom = os.environ.get("AI_GATEWAY_CMD")
    if custom:
        return shlex.split(custom)
    return [sys.executable, "-m", "app"]


#: ERROR_INTERNAL_ERROR, which Wine's CreateProcess returns once in a long while
WINE_CREATE_PROCESS_GLITCH = 1359


class GatewayProcess:
    """One gateway process; its stdout lines are parsed as control events as they come."""

    def __init__(
        self,
        args: list[str],
        *,
        tmp: Path,
        env: dict[str, str] | None = None,
        watch_stdin: bool = True,
        wait_ready: bool = True,
        stdin=subprocess.PIPE,
        unread_stderr: bool = False,
    ):
        self.log_dir = tmp / "logs"
        self.tmp = tmp
        full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        full_env.pop("AI_GATEWAY_TOKEN", None)
        full_env.pop("AI_GATEWAY_CONFIG", None)
        full_env.update(env or {})
        argv = gateway_command() + list(args)
        if "--log-dir" not in args:
            argv += ["--log-dir", str(self.log_dir)]
        if watch_stdin and "--watch-stdin" not in args:
            argv.append("--watch-stdin")
        self._spawn(argv, full_env, stdin, unread_stderr)
        self.ready: dict | None = None
        if wait_ready:
            try:
                self.ready = self.wait_event("ready", timeout=30)
            except EOFError:
                if not (under_wine() and "Failed to create child process" in self.stderr()):
                    raise
                # Wine, now and then: the onefile bootloader's CreateProcessW fails before
                # the gateway exists (nothing of ours ran); one more start
                self._spawn(argv, full_env, stdin, unread_stderr)
                self.ready = self.wait_event("ready", timeout=30)

    def _spawn(self, argv: list[str], env: dict[str, str], stdin, unread_stderr: bool) -> None:
        self.stderr_path = self.tmp / f"stderr-{time.monotonic_ns()}.txt"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115

        def start() -> subprocess.Popen:
            # unread_stderr: a pipe nobody ever reads, as a careless supervisor leaves it
            return subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=subprocess.PIPE,
                env=env,
                cwd=ROOT,
                stderr=subprocess.PIPE if unread_stderr else self._stderr,
            )

        try:
            self.proc = start()
        except OSError as exc:
            if not (under_wine() and getattr(exc, "winerror", None) == WINE_CREATE_PROCESS_GLITCH):
                raise
            # Wine, now and then: CreateProcess itself fails with ERROR_INTERNAL_ERROR
            # before any process exists (nothing of ours ran); one more start
            self.proc = start()
        self.events: queue.Queue = queue.Queue()
        self.raw_stdout: list[bytes] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.raw_stdout.append(line)
            try:
                self.events.put(orjson.loads(line))
            except orjson.JSONDecodeError:
                self.events.put({"event": "<not json>", "line": line})
        self.events.put(None)

    def wait_event(self, name: str | None = None, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name or 'event'} line within {timeout} s; stderr:\n{self.stderr()}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise EOFError(f"stdout closed before {name}; rc={self.proc.poll()}; stderr:\n{self.stderr()}")
            if name is None or event.get("event") == name:
                return event

    # -- addresses -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.ready["port"]

    @property
    def url(self) -> str:
        return self.ready["url"]

    @property
    def pid(self) -> int:
        return self.ready["pid"]

    # -- inspection ----------------------------------------------------------------------
    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-5000:]

    def log_text(self) -> str:
        path = self.log_dir / "gateway.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def log_line_for(self, request_id: str, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if f"id={request_id} " in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no log line for request {request_id}")

    def fd_count(self) -> int:
        """Open file descriptors of the gateway (Linux: /proc; elsewhere the test skips)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    # -- stopping ------------------------------------------------------------------------
    def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc.poll() is None:
            self.close_stdin()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def write_config(tmp: Path, text: str) -> Path:
    path = tmp / f"config-{time.monotonic_ns()}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def pid_gone(pid: int, timeout: float) -> bool:
    """Whether process `pid` ends (or is a zombie) within `timeout` seconds."""
    from app.runtime.lifecycle import process_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False
