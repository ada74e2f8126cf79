"""Runs the real gateway (`serve`) with one fault injected, to exercise the crash sinks.

    python -m tests.helpers.crashing_gateway KIND LOG_DIR

KIND: main (the serve loop raises), thread (a thread raises), unicode (a thread raises
with CJK and emoji in its message), task (an orphaned asyncio task raises), segfault (a
native crash through ctypes).
"""

import asyncio
import ctypes
import sys
import threading

from app.runtime import run
from app.runtime.stdio import harden

kind, log_dir = sys.argv[1], sys.argv[2]
harden()

if kind == "main":
    original = run.Stopper.wait

    async def failing_wait(self):
        await asyncio.sleep(0.3)
        raise RuntimeError("injected failure in the serve loop")

    run.Stopper.wait = failing_wait
elif kind == "thread":

    def boom():
        raise ValueError("injected failure in a thread")

    threading.Timer(0.5, boom).start()
elif kind == "unicode":

    def boom_unicode():
        raise ValueError("injected failure 你好 世界 😀 Ünïcödé ✓")

    threading.Timer(0.5, boom_unicode).start()
elif kind == "task":
    original_install = run.install_signal_handlers

    def install_and_orphan(loop, on_stop, on_reload):
        async def orphan():
            raise KeyError("injected failure in an orphaned task")

        loop.create_task(orphan())  # nobody keeps or awaits it
        original_install(loop, on_stop, on_reload)

    run.install_signal_handlers = install_and_orphan
elif kind == "segfault":
    threading.Timer(0.5, lambda: ctypes.string_at(0)).start()
else:
    sys.exit(f"unknown kind {kind}")

sys.exit(run.serve(run.ServeOptions(port=0, log_dir=log_dir, watch_stdin=True)))
