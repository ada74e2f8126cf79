"""Standard streams that cannot kill the process.

A windowed build has `sys.stdout`/`sys.stderr`/`sys.stdin` set to None; a console on a
legacy code page (cp936, cp1252) cannot encode an emoji and raises on `print`. Both are
made safe before anything else runs: UTF-8 with `errors="replace"`, line-buffered, and a
null sink where a stream is missing.
"""

from __future__ import annotations

import io
import os
import sys


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


def _reopen(name: str):
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

