"""The garbage collector, set for a server whose start-up objects live as long as it does.

What start-up makes (modules, classes, the app, the config, the pool) lives as long as
the process: frozen, the collector never walks it again. A request makes a few hundred
short-lived objects, so collecting the young generation every 700 allocations (the
default) ran a few times per request, and each full collection walked everything start-up
made. Runs of bench/bench.py with and without this, alternately, showed the two together
at about a tenth of the CPU of a streamed request at 64 connections. Memory stays
bounded: cyclic garbage is still collected, after 10,000 allocations instead of 700.
"""

from __future__ import annotations

import gc

#: allocations (less deallocations) between two collections of the young generation
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collects, then freezes what is left, and collects the young less often. Called once
    serving, and after a reload has retired the old configuration: what it made is
    unfrozen first, so that it can be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
