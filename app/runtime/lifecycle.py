"""The supervisor's contract: control lines on stdout, ways to be told to stop, exit codes.

stdout carries only JSON objects, one per line, written as bytes and flushed at once.
A stop can come from a signal, stdin (EOF or `shutdown`), the death of the parent
process, or `POST /admin/shutdown`; each ends in the same graceful path with its reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any

import orjson
from loguru import logger


class ExitCode(IntEnum):
    OK = 0  # stopped on purpose: do not restart
    USAGE = 64  # bad command line: do not restart, show the error
    INTERNAL = 70  # internal error, crash record written: restart with backoff
    CANNOT_BIND = 75  # port in use or forbidden: restart, e.g. with --port 0
    CONFIG = 78  # invalid configuration: do not restart, show the error


class ControlChannel:
    """JSON lines on stdout for the supervisor; nothing else is ever written there."""

    def __init__(self, stream: Any = None):
        stream = stream if stream is not None else sys.stdout
        self._out = getattr(stream, "buffer", None)
        self._text = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = orjson.dumps({"event": event, **fields}) + b"\n"
        with self._lock:
            try:
                if self._out is not None:
                    self._out.write(line)
                    self._out.flush()
                else:
                    self._text.write(line.decode())
                    self._text.flush()
            except (OSError, ValueError):
                pass  # nobody listens any more; the log still says everything

    def fatal(self, code: int, error: str) -> None:
        self.emit("fatal", code=int(code), error=error)


class Stopper:
    """One stop request wins; later ones (and their reasons) are ignored."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.reason: str | None = None
        self._event = asyncio.Event()

    def request(self, reason: str) -> None:
        """Ask for a graceful stop; safe from any thread and from signal handlers."""
        try:
            self.loop.call_soon_threadsafe(self._set, reason)
        except RuntimeError:
            pass  # the loop is already closed: we are stopping anyway

    def _set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            logger.info("stop requested: {}", reason)
            self._event.set()

    async def wait(self) -> str:
        await self._event.wait()
        assert self.reason is not None
        return self.reason


# -- stdin ------------------------------------------------------------------------------


def watch_stdin(on_stop: Callable[[str], None], on_reload: Callable[[], None]) -> threading.Thread:
    """EOF or a `shutdown` line stops the gateway; a `reload` line reloads the config.

    A thread, not the event loop: reading a pipe or a console is blocking on Windows.
    The app holds the write end: when the app dies, by any means, the pipe closes.
    """

    def run() -> None:
        for line in _stdin_lines():
            text = line.decode("utf-8", "replace").strip()
            command = text.lower()
            if command == "shutdown":
                on_stop("stdin-shutdown")
                return
            if command == "reload":
                on_reload()
            elif command:
                logger.warning("unknown command on stdin: {!r} (expected shutdown or reload)", text[:60])
        on_stop("stdin-eof")

    thread = threading.Thread(target=run, name="stdin-watch", daemon=True)
    thread.start()
    return thread


def _stdin_lines() -> Iterator[bytes]:
    """Lines from file descriptor 0, read unbuffered.

    `os.read` rather than `sys.stdin`: a daemon thread blocked inside a buffered reader
    makes the interpreter abort at exit ("could not acquire lock ... at interpreter
    shutdown"), which would turn every clean stop into a crash."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return  # no stdin at all: as good as end of file
    pending = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            if pending:
                yield pending
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line
        if len(pending) > 65536:  # nobody sends commands this long; do not buffer forever
            pending = b""


# -- parent -----------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """Whether `pid` is still running (a zombie counts as dead)."""
    if sys.platform == "win32":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is the best we have


def _windows_process_alive(pid: int) -> bool:
    import ctypes

    SYNCHRONIZE = 0x00100000
    PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return False
    try:
        return kernel32.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: still running
    finally:
        kernel32.CloseHandle(handle)


def onefile_bootloader_pid() -> int | None:
    """Our parent's pid when it is a PyInstaller onefile bootloader, else None.

    A onefile build is two processes: the bootloader the app started, and us. An app that
    kills "the sidecar" kills the bootloader (Tauri does), which leaves us orphaned while
    the app may still hold our stdin; watching the bootloader closes that gap."""
    meipass = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or not meipass:
        return None
    if not os.path.basename(os.path.normpath(meipass)).startswith("_MEI"):
        return None  # onedir: no bootloader process above us
    parent = os.getppid()
    return parent if parent > 1 else None


def watch_parent(pid: int, on_stop: Callable[[str], None], interval: float = 0.5) -> threading.Thread:
    """Stops the gateway within `interval` (+ the stop itself) after process `pid` ends.

    The pid need not be our direct parent: with a onefile build, the app's child is the
    bootloader, and our parent is that bootloader.
    """

    def run() -> None:
        while process_alive(pid):
            time.sleep(interval)
        on_stop("parent-exit")

    thread = threading.Thread(target=run, name="parent-watch", daemon=True)
    thread.start()
    return thread


# -- signals ----------------------------------------------------------------------------


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, on_stop: Callable[[str], None], on_reload: Callable[[], None]
) -> None:
    """SIGTERM/SIGINT stop; SIGHUP reloads (POSIX). On Windows also Ctrl-Break and console close."""
    if sys.platform != "win32":
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, "signal")
        loop.add_signal_handler(signal.SIGHUP, on_reload)
        return
    for name in ("SIGINT", "SIGBREAK", "SIGTERM"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, lambda *_: on_stop("signal"))
    _install_console_close_handler(on_stop)


_console_handler = None  # must outlive the call: Windows calls it from its own thread


def _install_console_close_handler(on_stop: Callable[[str], None]) -> None:
    """CTRL_CLOSE, LOGOFF and SHUTDOWN events give a process a few seconds, then kill it."""
    global _console_handler
    import ctypes
    from ctypes import wintypes

    handler_type = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)  # type: ignore[attr-defined]

    def handler(event: int) -> bool:
        if event in (2, 5, 6):  # CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT
            on_stop("signal")
            time.sleep(4)  # returning lets Windows end the process; give the stop a moment
            return True
        return False  # Ctrl-C / Ctrl-Break go to the signal handlers above

    _console_handler = handler_type(handler)
    ctypes.windll.kernel32.SetConsoleCtrlHandler(_console_handler, True)  # type: ignore[attr-defined]
