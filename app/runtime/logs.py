"""Logging: loguru sinks for stderr and a rotating `gateway.log`, every line redacted.

The sinks are plain callables so that the whole formatted record, traceback included,
passes through redaction. `diagnose` is off everywhere: it would print local variables
(API keys among them) into tracebacks. Stdlib logging (Sanic's loggers) is routed here,
so nothing ever reaches stdout, which belongs to the control channel.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from ..redact import Redactor
from ..text import printable
from .stdio import QueuedWriter, queue_stderr

LOG_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name}:{line} | {message}"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
#: request lines are flushed in batches: a syscall per request costs throughput
FLUSH_SECONDS = 0.5


class RotatingFile:
    """A UTF-8 append-only file that rolls over to `.1` ... `.N` past a size."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._size = self._file.tell()
        self._flusher_started = False

    def write(self, text: str, flush: bool = True) -> None:
        """Append `text`; without `flush` it reaches the disk within FLUSH_SECONDS."""
        size = len(text.encode("utf-8", "replace"))  # bytes on disk, not characters
        with self._lock:
            if self._size + size > self.max_bytes and self._size > 0:
                self._rotate()
            self._file.write(text)
            self._size += size
            if flush:
                self._file.flush()
            elif not self._flusher_started:
                self._flusher_started = True
                threading.Thread(target=self._flush_now_and_then, name="log-flush", daemon=True).start()

    def _flush_now_and_then(self) -> None:
        while not self._file.closed:
            time.sleep(FLUSH_SECONDS)
            with self._lock:
                if not self._file.closed:
                    self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _Redacting:
    """A loguru sink: redact the formatted line, then hand it on."""

    def __init__(self, redactor: Redactor, write: Callable[[str], Any]):
        self.redactor = redactor
        self._write = write

    def __call__(self, message: Any) -> None:
        try:
            self._write(self.redactor(str(message)))
        except Exception:
            pass  # a log line must never take the gateway down (a closed stderr, a full disk)


class _Intercept(logging.Handler):
    """Routes stdlib logging records into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


class Logs:
    """The configured sinks; `update_redactor` follows config reloads.

    Request lines take their own path (`request_line`): straight to the file, and to
    stderr only at debug level."""

    def __init__(self, log_dir: Path | None, level: str, redactor: Redactor):
        self.redactor = redactor
        self.file: RotatingFile | None = None
        self._sinks: list[_Redacting] = []
        self._stamp_second = -1
        self._stamp = ""
        self.debug_to_stderr = level.upper() in ("DEBUG", "TRACE")
        logger.remove()
        # a message may quote what a client or an upstream sent: one sanitiser for all
        logger.configure(patcher=_sanitise_message)
        # stderr writes must never block the event loop, whoever reads (or not) the pipe
        self.stderr: QueuedWriter | None = queue_stderr()
        if sys.stderr is not None:
            sink = _Redacting(redactor, sys.stderr.write)
            self._sinks.append(sink)
            # request lines go to the file only: a supervisor that never reads stderr must
            # not fill its pipe at the rate of the traffic (a full pipe blocks every write)
            logger.add(
                sink,
                level=level,
                format=LOG_FORMAT,
                diagnose=False,
                backtrace=False,
                colorize=False,
                filter=lambda r: self.debug_to_stderr or "request" not in r["extra"],
            )
        if log_dir is not None:
            self.file = RotatingFile(log_dir / "gateway.log")
            sink = _Redacting(redactor, self.file.write)
            self._sinks.append(sink)
            logger.add(
                sink,
                level=min_level(level, "INFO"),
                format=LOG_FORMAT,
                diagnose=False,
                backtrace=False,
                colorize=False,
                filter=lambda r: "request" not in r["extra"],
            )
        logging.basicConfig(handlers=[_Intercept()], level=logging.INFO, force=True)
        # httpx logs every upstream request at INFO: the request line already says it all
        for name in ("sanic.access", "httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)

    def request_line(self, line: str) -> None:
        """One request line straight to the file, in the same format as the other lines.

        The request path is hot: going around loguru's record machinery saves about a
        tenth of the gateway's CPU per request. The line comes masked: the record masks
        the few fields a client or an upstream chose (RequestRecord.redact), the rest are
        its own numbers."""
        if self.file is not None:
            now = time.time()
            if int(now) != self._stamp_second:
                self._stamp_second = int(now)
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            millis = int(now * 1000) % 1000
            try:
                self.file.write(f"{self._stamp}.{millis:03d} | INFO    | request | {line}\n", flush=False)
            except Exception:
                pass  # a log line must never take the gateway down
        if self.debug_to_stderr:
            logger.bind(request=True).debug(line)

    def update_redactor(self, redactor: Redactor) -> None:
        self.redactor = redactor
        for sink in self._sinks:
            sink.redactor = redactor

    def close(self) -> None:
        logger.complete()
        logger.remove()
        if self.file is not None:
            self.file.close()
        if self.stderr is not None:
            self.stderr.drain(1.0)  # a pipe nobody reads must not hold up the exit


def _sanitise_message(record: Any) -> None:
    record["message"] = printable(record["message"], 4000)


def min_level(a: str, b: str) -> str:
    """The more verbose of two loguru level names."""
    return a if logger.level(a.upper()).no <= logger.level(b.upper()).no else b
