"""A Windows Job Object per program run: its whole process tree ends with the job.

A program a process provider starts may start others. Windows has no process groups to
signal; a job holds every process started inside it, and with
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE the system ends them all when the last handle to the
job closes. The gateway holds that handle, so the tree dies with it even when the gateway
itself is killed (TerminateProcess, Task Manager, a crash): a `taskkill /T` at stop time
cannot cover that.

The program is created suspended and resumed only once it is in the job, so nothing it
starts can escape the job in between.
"""

from __future__ import annotations

import ctypes
from ctypes import wintypes
from typing import Any

from loguru import logger

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9
PROCESS_SET_QUOTA = 0x0100
PROCESS_TERMINATE = 0x0001
PROCESS_SUSPEND_RESUME = 0x0800


class _BasicLimits(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", wintypes.DWORD),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", wintypes.DWORD),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", wintypes.DWORD),
        ("SchedulingClass", wintypes.DWORD),
    ]


class _IoCounters(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "ReadOperationCount",
            "WriteOperationCount",
            "OtherOperationCount",
            "ReadTransferCount",
            "WriteTransferCount",
            "OtherTransferCount",
        )
    ]


class _ExtendedLimits(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", _BasicLimits),
        ("IoInfo", _IoCounters),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


def _kernel32() -> Any:
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.CreateJobObjectW.restype = wintypes.HANDLE
    kernel32.CreateJobObjectW.argtypes = [wintypes.LPVOID, wintypes.LPCWSTR]
    kernel32.SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD]
    kernel32.AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
    kernel32.TerminateJobObject.argtypes = [wintypes.HANDLE, wintypes.UINT]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    return kernel32


class Job:
    """One job holding one program's process tree; `close()` ends whatever is left in it."""

    def __init__(self, handle: int):
        self._handle: int | None = handle

    @classmethod
    def contain(cls, pid: int) -> Job | None:
        """Puts the suspended process `pid` in a new kill-on-close job, then resumes it.

        The process is resumed whatever happens after it was opened; None when no job
        could hold it (then the caller kills the tree by other means). OSError when the
        process cannot even be opened."""
        kernel32 = _kernel32()
        process = kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE | PROCESS_SUSPEND_RESUME, False, pid)
        if not process:  # it cannot be resumed either: the caller must end it
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
        job = None
        try:
            handle = kernel32.CreateJobObjectW(None, None)
            if not handle:
                logger.warning("cannot create a job object (error {})", ctypes.get_last_error())  # type: ignore[attr-defined]
                return None
            job = cls(handle)
            limits = _ExtendedLimits()
            limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
            if not (
                kernel32.SetInformationJobObject(
                    handle, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS, ctypes.byref(limits), ctypes.sizeof(limits)
                )
                and kernel32.AssignProcessToJobObject(handle, process)
            ):
                # e.g. the gateway runs in a job that forbids nesting (before Windows 8)
                logger.warning("cannot put process {} in a job (error {})", pid, ctypes.get_last_error())  # type: ignore[attr-defined]
                job.close()
                job = None
            return job
        finally:
            # NtResumeProcess resumes the threads of a process CreateProcess made suspended;
            # subprocess keeps no handle to the main thread to call ResumeThread with
            ctypes.WinDLL("ntdll").NtResumeProcess(wintypes.HANDLE(process))  # type: ignore[attr-defined]
            kernel32.CloseHandle(process)

    def terminate(self) -> None:
        """Ends every process in the job now."""
        if self._handle is not None:
            _kernel32().TerminateJobObject(self._handle, 1)

    def close(self) -> None:
        """Drops the job; the system ends what is still running in it. Idempotent."""
        if self._handle is not None:
            _kernel32().CloseHandle(self._handle)
            self._handle = None
