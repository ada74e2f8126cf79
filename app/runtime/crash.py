"""Crash records: what a dead run leaves for the next one and for the person debugging it.

- `crash-<time>-<pid>.log`: the traceback of an unhandled exception in any thread or
  task, with version, platform and frozen or not.
- `faulthandler-<pid>.log`: kept open for the whole run so that a native crash (a fatal
  signal) can still write its stack; renamed to a crash file by the next run if used.
- `run-<pid>.marker`: written at start, removed at every orderly exit. Found by a later
  run with its process gone, it means that run died without a word (SIGKILL,
  TerminateProcess, native crash). One per run, so that runs sharing a log dir (the
  app's sidecar and the same exe started by hand) neither report a live one as dead
  nor remove each other's.
- `last-exit.json`: code, reason, time, crash file of the last orderly exit, and
  `bootloader_killed` when a onefile build's bootloader was killed under it (the gateway
  then stops cleanly, but nobody asked it to: the next run reports it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import faulthandler
import os
import platform
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import orjson

from .. import __version__
from ..redact import Redactor
from .lifecycle import process_alive


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class CrashRecorder:
    def __init__(self, log_dir: Path, redactor: Redactor):
        self.log_dir = log_dir
        self.redactor = redactor
        self.marker = log_dir / f"run-{os.getpid()}.marker"
        self.last_exit = log_dir / "last-exit.json"
        self.native = log_dir / f"faulthandler-{os.getpid()}.log"
        self.crash_file: Path | None = None
        self._native_file: TextIO | None = None

    # -- the run marker and the previous exit --------------------------------------------
    def begin(self) -> dict[str, Any] | None:
        """Read what the last run left, then mark this one as running."""
        previous = self._previous_exit()
        _write_atomic(self.marker, orjson.dumps({"pid": os.getpid(), "started": _now(), "version": __version__}))
        return previous

    def _previous_exit(self) -> dict[str, Any] | None:
        dead = self._dead_runs()
        if dead:
            # each is reported once: the newest is named, every one's native stack is kept
            reports = []
            for path, marker in dead:
                pid = marker.get("pid")
                crash = self._adopt_native_crash(pid)
                reports.append(
                    {
                        "code": None,
                        "reason": "unclean",
                        "time": marker.get("started"),
                        "pid": pid,
                        "crash_file": str(crash) if crash else None,
                    }
                )
                path.unlink(missing_ok=True)
            return max(reports, key=lambda r: str(r["time"] or ""))
        try:
            last = orjson.loads(self.last_exit.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(last, dict) or (last.get("code") == 0 and not last.get("bootloader_killed")):
            return None
        return last

    def _dead_runs(self) -> list[tuple[Path, dict[str, Any]]]:
        """The markers of runs whose process is gone (`run.marker`: an older version's)."""
        found = []
        for path in [*self.log_dir.glob("run-*.marker"), self.log_dir / "run.marker"]:
            try:
                marker = orjson.loads(path.read_bytes())
            except FileNotFoundError:
                continue
            except (OSError, orjson.JSONDecodeError):
                marker = {}  # torn by the death itself: still a run that died
            if not isinstance(marker, dict):
                marker = {}
            pid = marker.get("pid")
            if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
                continue  # another run that shares this log dir, and runs
            found.append((path, marker))
        return found

    def _adopt_native_crash(self, pid: Any) -> Path | None:
        """The dead run's faulthandler output, if it wrote any, becomes a crash file."""
        if not isinstance(pid, int):
            return None
        native = self.log_dir / f"faulthandler-{pid}.log"
        try:
            if native.stat().st_size == 0:
                native.unlink()
                return None
        except OSError:
            return None
        stamp = dt.datetime.fromtimestamp(native.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
        target = self.log_dir / f"crash-{stamp}-{pid}.log"
        os.replace(native, target)
        return target

    def end(self, code: int, reason: str, **extra: Any) -> None:
        """An orderly exit: say why, and drop the marker."""
        data = {
            "code": code,
            "reason": reason,
            "time": _now(),
            "pid": os.getpid(),
            "crash_file": str(self.crash_file) if self.crash_file else None,
            **extra,
        }
        try:
            _write_atomic(self.last_exit, orjson.dumps(data))
            self.marker.unlink(missing_ok=True)
        except OSError:
            pass
        self._close_native()

    # -- sinks for unhandled errors ------------------------------------------------------
    def install(self) -> None:
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_excepthook
        try:
            native = open(self.native, "w", encoding="utf-8")  # noqa: SIM115
            faulthandler.enable(file=native, all_threads=True)
            self._native_file = native
        except (OSError, RuntimeError):
            self._native_file = None

    def _close_native(self) -> None:
        if self._native_file is None:
            return
        try:
            faulthandler.disable()
            self._native_file.close()
            if self.native.stat().st_size == 0:
                self.native.unlink()
        except OSError:
            pass
        self._native_file = None

    def record(self, where: str, exc: BaseException | None, context: str = "") -> Path | None:
        """Write a crash file for `exc` (or `context` alone); returns its path."""
        lines = [
            f"ai-gateway {__version__} crash record",
            f"time: {_now()}",
            f"pid: {os.getpid()}",
            f"where: {where}",
            f"python: {sys.version.split()[0]} on {platform.platform()}",
            f"frozen: {bool(getattr(sys, 'frozen', False))}",
            "",
        ]
        if context:
            lines += [context, ""]
        if exc is not None:
            lines += traceback.format_exception(type(exc), exc, exc.__traceback__)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.log_dir / f"crash-{stamp}-{os.getpid()}.log"
        n = 1
        while path.exists():
            n += 1
            path = self.log_dir / f"crash-{stamp}-{os.getpid()}-{n}.log"
        try:
            path.write_text(self.redactor("\n".join(lines)), encoding="utf-8", errors="replace")
        except OSError:
            return None
        self.crash_file = path
        return path

    def _excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if exc is not None and exc.__traceback__ is None:
            exc = exc.with_traceback(tb)
        self.record("main thread", exc)
        self._log(f"unhandled exception in the main thread: {exc_type.__name__}: {exc}")

    def _thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        self.record(f"thread {name}", args.exc_value)
        self._log(f"unhandled exception in thread {name}: {args.exc_type.__name__}: {args.exc_value}")

    def loop_exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = context.get("message", "")
        if exc is None:
            # notices without an exception (e.g. an unclosed transport) are not crashes
            self._log(f"asyncio: {message}", level="WARNING")
            return
        task = context.get("task") or context.get("future")
        where = f"asyncio task {task.get_name()}" if isinstance(task, asyncio.Task) else "asyncio"
        self.record(where, exc, message)
        self._log(f"unhandled exception in {where}: {type(exc).__name__}: {exc}")

    @staticmethod
    def _log(text: str, level: str = "ERROR") -> None:
        from loguru import logger

        logger.log(level, text)
