"""The lint, format and type gate: ruff (lint and format) over all code and mypy over app/,
with the settings in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.gateway import ROOT


def tool(name: str) -> str:
    exe = Path(sysconfig.get_path("scripts")) / (f"{name}.exe" if sys.platform == "win32" else name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_ruff_finds_nothing():
    result = subprocess.run(
        [tool("ruff"), "check", "app", "tests", "bench", "build", ".ci"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted():
    result = subprocess.run(
        [tool("ruff"), "format", "--check", "app", "tests", "bench", "build", ".ci"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, "run `ruff format` first:\n" + result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = subprocess.run([tool("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
