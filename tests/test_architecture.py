"""The import direction of DESIGN.md holds: errors/wire -> config/sse/redact -> providers
-> routing -> server -> runtime -> cli; httpx only in providers/, sanic only in server/
and the composition root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
LAYERS = {
    "app.errors": 0,
    "app.wire": 0,
    "app.aio": 0,
    "app.text": 0,
    "app.config": 1,
    "app.sse": 1,
    "app.redact": 1,
    "app.dialects": 1,
    "app.providers": 2,
    "app.routing": 3,
    "app.server": 4,
    "app.runtime": 5,
    "app.cli": 6,
    "app.__main__": 7,
    "app": 0,
}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found.update(f"{target}.{alias.name}" for alias in node.names)
                else:
                    found.add(target)
            else:
                found.add(node.module)
    return found


SOURCES = sorted(APP.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_imports_point_downwards(path):
    me = module_name(path)
    for target in imports(path):
        if target == "app" or target.startswith("app."):
            assert layer(target) <= layer(me), f"{me} imports {target}, a higher layer"


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_foreign_libraries_stay_in_their_rooms(path):
    me = module_name(path)
    roots = {name.split(".")[0] for name in imports(path)}
    if "httpx" in roots or "httpx_sse" in roots:
        assert me.startswith("app.providers"), f"{me} uses httpx outside providers/"
    if "sanic" in roots:
        assert me.startswith("app.server") or me == "app.runtime.run", f"{me} uses sanic outside server/"
