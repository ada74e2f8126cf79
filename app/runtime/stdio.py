"""Standard streams that cannot kill the process.

A windowed build has `sys.stdout`/`sys.stderr`/`sys.stdin` set to None; a console on a
legacy code page (cp936, cp1252) cannot encode an emoji and raises on `print`. Both are
made safe before anything else runs: UTF-8 with `errors="replace"`, line-buffered, and a
null sink where a stream is missing.
"""

from __future__ import annotations

import collections
import io
import os
import sys
import threading
from typing import IO, TextIO


class NullStream(io.TextIOBase):
    """Stands in for a missing stream: accepts writes, reads as end of file."""

    encoding = "utf-8"
    errors = "replace"

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)

    def read(self, size: int | None = -1) -> str:
        return ""

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return ""

    @property
    def buffer(self) -> io.BytesIO:
        return io.BytesIO()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no file descriptor behind a missing stream")


_FDS = {"stdin": 0, "stdout": 1, "stderr": 2}


def _reopen(name: str) -> IO[str] | None:
    """A text stream on the standard descriptor if the OS gave us one, else None.

    A windowed interpreter sets the stream to None even when the parent passed a pipe:
    the supervisor still reads the ready line from that pipe."""
    fd = _FDS[name]
    try:
        os.fstat(fd)
    except OSError:
        return None
    mode = "r" if name == "stdin" else "w"
    try:
        return open(fd, mode, encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    except OSError:
        return None


def harden() -> None:
    """Make the three standard streams safe to use, whatever the process was given."""
    for name in ("stdin", "stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, _reopen(name) or NullStream())
            continue
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            if name == "stdin":
                reconfigure(encoding="utf-8", errors="replace")
            else:
                reconfigure(encoding="utf-8", errors="replace", line_buffering=True)
        except (ValueError, OSError, io.UnsupportedOperation):
            pass  # a stream that was already read from or is detached keeps its settings
    os.environ.setdefault("PYTHONIOENCODING", "utf-8:replace")  # for child processes


class QueuedWriter(io.TextIOBase):
    """A text stream whose writes never block: a thread hands them to the real stream.

    A supervisor that pipes our stderr and never reads it fills the pipe (about 64 KB);
    a plain `write()` then blocks, and on the event loop's thread that freezes the whole
    gateway. Here only the writer thread waits; when more than `limit` characters are
    waiting, new text is dropped and counted, and the count is written once the stream
    drains again."""

    def __init__(self, stream: TextIO, limit: int = 1 << 20):
        self._stream = stream
        self._limit = limit
        self._pending: collections.deque[str] = collections.deque()
        self._size = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="stderr-writer", daemon=True)
        self._thread.start()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, text: str) -> int:
        with self._lock:
            if self._size + len(text) > self._limit:
                self._dropped += 1
            else:
                self._pending.append(text)
                self._size += len(text)
                self._idle.clear()
                self._wake.notify()
        return len(text)

    def flush(self) -> None:
        """Never waits: the writer thread flushes after every batch."""

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` for everything written so far to reach the stream."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._dropped:
                    self._idle.set()
                    self._wake.wait()
                batch = "".join(self._pending)
                self._pending.clear()
                self._size = 0
                dropped, self._dropped = self._dropped, 0
            if dropped:
                batch += f"[{dropped} log writes dropped: nobody was reading stderr]\n"
            try:
                self._stream.write(batch)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr: nothing to do but carry on


def queue_stderr() -> QueuedWriter | None:
    """Put a QueuedWriter in front of sys.stderr (once); returns it."""
    if isinstance(sys.stderr, QueuedWriter):
        return sys.stderr
    if sys.stderr is None or isinstance(sys.stderr, NullStream):
        return None
    writer = QueuedWriter(sys.stderr)
    sys.stderr = writer
    return writer
