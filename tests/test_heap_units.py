"""The collector's settings for a long-running server (app/runtime/heap.py), in a process of
its own: they are process-wide."""

from __future__ import annotations

import subprocess
import sys

from tests.gateway import ROOT

PROBE = """
import gc, weakref
from app.runtime import heap

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a

kept = cycle()  # made at start-up, like the old configuration of a reload
gone = weakref.ref(kept)
heap.settle()
assert gc.get_freeze_count() > 0 and gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
del kept
gc.collect()
assert gone() is not None, "a frozen object was collected"
heap.settle()  # after a reload: what the old configuration made may go now
assert gone() is None, "an object frozen by the first settle was never let go"
young = weakref.ref(cycle())  # cyclic garbage made while serving is still collected
allocated = [Node() for _ in range(heap.YOUNG_THRESHOLD * 3)]  # what serving allocates
assert young() is None, "young cyclic garbage outlived many collections"
print("ok")
"""


def test_start_up_objects_are_frozen_and_let_go_after_a_reload_and_garbage_is_still_collected():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
