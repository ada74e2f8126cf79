"""A short soak (the long one: `python bench/soak.py`): mixed traffic at 16 and 64
concurrency with client disconnects and upstream faults; afterwards nothing has grown and
every request that finished is in the log."""

from __future__ import annotations

import os

import pytest

from tests.soak import print_reports, run_soak

pytestmark = pytest.mark.slow  # skipped by the quick loop (-m "not slow"); CI runs it

SECONDS = float(os.environ.get("SOAK_SECONDS", "6"))


def test_soak_loses_nothing():
    reports = run_soak(SECONDS, [16, 64])
    print_reports(reports)
    for r in reports:
        assert r.requests > 0
        dropped = {k: v for k, v in r.outcomes.items() if k.startswith("client error")}
        assert not dropped, f"connections dropped instead of answered: {dropped}"
        assert r.outcomes["client left"] > 0 and r.outcomes["ok"] > 0
        assert r.missing_from_log == 0
        assert r.after["requests in flight"] <= 0 and r.after["upstream requests open"] == 0
        assert r.after["asyncio tasks"] <= r.before["asyncio tasks"]
        if r.before["fds besides upstream"] is not None:
            assert r.after["fds besides upstream"] <= r.before["fds besides upstream"]
        if r.before["RSS MB"] is not None:
            assert r.after["RSS MB"] - r.before["RSS MB"] < 30, "memory grew beyond noise"
