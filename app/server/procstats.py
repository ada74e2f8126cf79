"""Figures about the gateway process itself, for /admin/stats and its leak checks.

The branch is chosen by platform, not by what the file system shows: under Wine (and in
any Windows process that can see a Linux root) `/proc/self/fd` exists, but describes
another process model entirely.
"""

from __future__ import annotations

import os
import sys

Stats = dict[str, float | int | None]


def process_stats() -> Stats:
    """Open descriptors (POSIX) or handles (Windows), and resident memory in MB; None where
    unknown. Handles are not descriptors (threads, events and the I/O completion port count
    too), so they have their own field and the descriptor leak checks leave them alone."""
    if sys.platform == "win32":
        return _windows()
    if sys.platform.startswith("linux"):
        return _linux()
    return {"open_fds": None, "open_handles": None, "rss_mb": None}


def _linux() -> Stats:
    fds = rss = None
    try:
        fds = len(os.listdir("/proc/self/fd"))
        with open("/proc/self/statm") as f:
            rss = round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except OSError:
        pass
    return {"open_fds": fds, "open_handles": None, "rss_mb": rss}


def _windows() -> Stats:
    """GetProcessHandleCount and the working set from GetProcessMemoryInfo."""
    import ctypes
    from ctypes import wintypes

    class MemoryCounters(ctypes.Structure):  # PROCESS_MEMORY_COUNTERS
        _fields_ = [
            ("cb", wintypes.DWORD),
            ("PageFaultCount", wintypes.DWORD),
            ("PeakWorkingSetSize", ctypes.c_size_t),
            ("WorkingSetSize", ctypes.c_size_t),
            ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
            ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
            ("PagefileUsage", ctypes.c_size_t),
            ("PeakPagefileUsage", ctypes.c_size_t),
        ]

    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.GetProcessHandleCount.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
    kernel32.K32GetProcessMemoryInfo.argtypes = [wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD]
    process = kernel32.GetCurrentProcess()
    handles = wintypes.DWORD()
    # Wine answers 0 (no process has none): unknown, not zero
    count = (handles.value or None) if kernel32.GetProcessHandleCount(process, ctypes.byref(handles)) else None
    counters = MemoryCounters()
    counters.cb = ctypes.sizeof(counters)
    # K32GetProcessMemoryInfo is psapi's GetProcessMemoryInfo, exported by kernel32 since Windows 7
    ok = kernel32.K32GetProcessMemoryInfo(process, ctypes.byref(counters), counters.cb)
    rss = round(counters.WorkingSetSize / 2**20, 1) if ok else None
    return {"open_fds": None, "open_handles": count, "rss_mb": rss}
