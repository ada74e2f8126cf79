"""Starts the gateway as a windowed build does: sys.stdout and sys.stderr are None."""

import sys

sys.stdout = None
sys.stderr = None

from app.__main__ import run  # noqa: E402

run()
