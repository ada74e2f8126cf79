"""The openai npm SDK (`responses.create`, `responses.stream`) against the same gateway and
upstream: tests/node/responses.test.mjs, run by Node's own test runner."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
READY = shutil.which("node") and (NODE_DIR / "node_modules" / "openai").is_dir()

pytestmark = [
    pytest.mark.usefixtures("leak_guard"),
    # CI installs the package (.ci/run); elsewhere: cd tests/node && npm ci
    pytest.mark.skipif(not READY and not os.environ.get("CI"), reason="needs node and `npm ci` in tests/node"),
]


def test_openai_npm_sdk_responses(gateway):
    result = subprocess.run(
        ["node", "--test", "--test-reporter=tap", "responses.test.mjs"],
        cwd=NODE_DIR,
        env={**os.environ, "GATEWAY_URL": gateway.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.M)
    assert result.returncode == 0 and passed and int(passed.group(1)) >= 9, result.stdout[-4000:] + result.stderr
