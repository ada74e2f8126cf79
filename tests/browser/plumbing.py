"""What the engine drivers share: child processes whose stderr is searched for a line,
and JSON commands over a WebSocket (the DevTools protocol and WebDriver BiDi share it)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path


class EngineMissing(Exception):
    """The engine is not installed here; the message says how to get it."""


class EngineError(Exception):
    pass


class ChildProcess:
    """A child process whose stderr is drained into a file and searched for a line."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        pass_fds: tuple[int, ...] = (),
        log: Path,
    ):
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            pass_fds=pass_fds,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._log_file.write(raw)
            with self._changed:
                self._lines.append(raw.decode("utf-8", "replace"))
                self._changed.notify_all()
        with self._changed:
            self._lines.append("")  # end of stderr
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if line == "":
                        raise EngineError(f"{self.proc.args[0]} exited ({self.proc.poll()}): {self.tail()}")
                    found = regex.search(line)
                    if found:
                        return found
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EngineError(f"no line matching {pattern!r} within {timeout} s: {self.tail()}")
                self._changed.wait(left)

    def tail(self) -> str:
        return "".join(self._lines[-20:])[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, 9)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self._log_file.close()


class WebSocketRpc:
    """JSON commands with ids over one WebSocket (CDP and BiDi share this shape)."""

    def __init__(self, url: str):
        from contextlib import ExitStack

        from websockets.sync.client import connect

        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(url, max_size=None, open_timeout=10))
        self._ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 30, **params) -> dict:
        number = next(self._ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"{method}: no answer within {timeout} s")
            message = json.loads(self.ws.recv(timeout=left))
            if message.get("id") == number:
                if "error" in message:
                    raise EngineError(f"{method}: {message['error']}: {message.get('message', '')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
                del self.events[:-200]

    def wait_event(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == method:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"no {method} event within {timeout} s")
            message = json.loads(self.ws.recv(timeout=left))
            if "method" in message:
                self.events.append(message)

    def close(self) -> None:
        self._stack.close()
