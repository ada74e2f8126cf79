"""Soak: mixed traffic for a bounded time, with client disconnects and upstream faults,
then a check that nothing grew and that every request reached the log.

    python bench/soak.py [--seconds 60] [--concurrency 16,64] [--disconnects 0.3] [--faults 0.1]

The soak itself lives with the test harness (tests/soak.py), which a short test run also
uses; this is its command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.soak import main  # noqa: E402

if __name__ == "__main__":
    main()
