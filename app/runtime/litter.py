"""Removes the extraction dirs that killed runs of this onefile executable left behind.

A onefile build unpacks itself into `<temp>/_MEIxxxxxx` and its bootloader deletes that
dir when the gateway exits. A bootloader that is killed (Tauri's `child.kill()`, Task
Manager, SIGKILL) deletes nothing: about 23 MB per unclean quit. So each run marks its own
dir with who it is, and at start removes the dirs of earlier runs when all of these hold:

- it is a `_MEI*` dir beside our own (same temp dir), and not our own;
- it carries our marker naming the same executable (another program's dirs, and dirs of
  runs too young to have written the marker, are never touched);
- none of the pids in its marker is alive (a reused pid only keeps a dir, never loses one);
- on Linux, no process maps a file from it (its shared libraries would show in
  /proc/*/maps while anything still runs from it).

A run killed a moment ago may still be winding down (its gateway notices the bootloader's
death within half a second, then drains), so a dir that is ours but still in use is looked
at again a few times, with growing pauses, for about a minute. On Windows a dir in use
cannot be deleted (its DLLs are locked): a failed removal waits for the next look too. It
all runs on a background thread: the ready line never waits for it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from loguru import logger

from .lifecycle import onefile_bootloader_pid, process_alive

MARKER = "ai-gateway-run.json"
# pauses before each further look at dirs of runs still winding down: about a minute in all
RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def own_extraction_dir() -> Path | None:
    """Our `_MEI*` dir when this is a onefile build, else None."""
    if onefile_bootloader_pid() is None:
        return None
    return Path(os.path.normpath(sys._MEIPASS))  # type: ignore[attr-defined]


def mark(own: Path, executable: str, pids: Iterable[int]) -> None:
    """Writes who runs from `own`, for the sweeps of later runs."""
    (own / MARKER).write_text(json.dumps({"executable": executable, "pids": sorted(set(pids))}), encoding="utf-8")


def linux_mapped_dirs(parent: Path) -> set[str]:
    """Names of the `_MEI*` dirs under `parent` that some process maps a file from."""
    prefix = str(parent) + os.sep + "_MEI"
    found: set[str] = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
                for line in maps:
                    at = line.find(prefix)
                    if at >= 0:
                        found.add(line[at + len(str(parent)) + 1 :].split(os.sep, 1)[0].strip())
        except OSError:
            continue  # gone, or not ours to read: the pid check still holds
    return found


def our_dirs(parent: Path, own: Path, executable: str) -> list[tuple[Path, list[object]]]:
    """The `_MEI*` dirs under `parent`, other than `own`, whose marker names `executable`,
    each with the pids the marker records."""
    found: list[tuple[Path, list[object]]] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.startswith("_MEI") or entry.name == own.name:
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        try:
            record = json.loads((entry / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # no marker: not ours, or killed before it wrote one
        if not isinstance(record, dict) or record.get("executable") != executable:
            continue
        pids = record.get("pids")
        found.append((entry, pids if isinstance(pids, list) else [None]))
    return found


def stale_dirs(parent: Path, own: Path, executable: str, alive: Callable[[int], bool], in_use: set[str]) -> list[Path]:
    """The dirs under `parent` that the rules above allow removing."""
    return [
        entry
        for entry, pids in our_dirs(parent, own, executable)
        if entry.name not in in_use and all(isinstance(p, int) and not alive(p) for p in pids)
    ]


def remove_marker_last(entry: Path) -> None:
    """Removes a dead run's dir, its marker last. The sweeping run can itself be killed
    half-way (its bootloader killed, its gateway winding down): the dir it leaves still
    names its owner, so a later sweep finishes the job. Another sweep removing the same
    dir at the same moment is not an error."""
    for child in entry.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, onerror=_unless_gone)
        else:
            child.unlink(missing_ok=True)
    (entry / MARKER).unlink(missing_ok=True)
    entry.rmdir()


def _unless_gone(_function: object, _path: str, exc_info: tuple) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def sweep(own: Path, executable: str) -> tuple[list[Path], int]:
    """Removes the stale dirs beside `own`. Returns the ones removed, and how many of our
    dirs are left (in use, or not removable yet) for a later look."""
    parent = own.parent
    in_use = linux_mapped_dirs(parent) if sys.platform.startswith("linux") else set()
    removed = []
    for entry in stale_dirs(parent, own, executable, process_alive, in_use):
        try:
            remove_marker_last(entry)
            removed.append(entry)
        except OSError as exc:  # locked by a live process (Windows), or not ours to delete
            logger.debug("left {} in place: {}", entry, exc)
    return removed, len(our_dirs(parent, own, executable))


def sweep_until_settled(own: Path, executable: str, pauses: Iterable[float] = RETRY_PAUSES) -> int:
    """Sweeps now, then again after each pause while dirs of ours are left. A dir of a run
    that is really running stays for good: the looks end after the last pause. Returns how
    many dirs were removed."""
    total = 0
    for pause in (0.0, *pauses):
        time.sleep(pause)
        removed, left = sweep(own, executable)
        if removed:
            logger.info("removed {} extraction dir(s) left by killed runs", len(removed))
        total += len(removed)
        if not left:
            break
    return total


def start_sweeper() -> threading.Thread | None:
    """Marks our own dir at once (a run killed before its mark leaves a dir no later run
    dares to remove), then sweeps the stale ones off the start-up path."""
    own = own_extraction_dir()
    if own is None:
        return None
    bootloader = onefile_bootloader_pid()
    try:
        mark(own, sys.executable, [os.getpid()] + ([bootloader] if bootloader else []))
    except OSError as exc:
        logger.warning("could not mark the extraction dir: {}", exc)

    def run() -> None:
        try:
            sweep_until_settled(own, sys.executable)
        except Exception as exc:  # tidying up must never take the gateway down
            logger.warning("could not tidy the temp dir: {}", exc)

    thread = threading.Thread(target=run, name="temp-sweeper", daemon=True)
    thread.start()
    return thread
