"""build/build.py freezes only what the gateway needs: it tells test packages from the
runtime and build dependencies (the closure of pyproject's, markers evaluated)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.gateway import ROOT


def load_build():
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "build" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_test_packages_are_unneeded_and_runtime_ones_are_not():
    pytest.importorskip("packaging")
    unneeded = load_build().unneeded_packages()
    assert "pytest" in unneeded and "openai" in unneeded  # installed here by '.[test]'
    for needed in ("sanic", "httpx", "httpcore", "orjson", "loguru", "platformdirs", "pip"):
        assert needed not in unneeded, needed  # the runtime closure (httpcore comes with httpx)
