"""The documents for app authors cannot rot silently: their JSON is checked against
Tauri's own schema, their flags against the gateway's parser, their exit codes against
the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from app.cli import check_parser, serve_parser
from app.runtime.lifecycle import ExitCode
from tests.gateway import ROOT

DOC = ROOT / "tauri-sidecar.md"
CACHE = ROOT / ".cache" / "tauri-cli"
SNIPPET = re.compile(r"<!-- schema: (?P<kind>[\w.\-]+) -->\s*```json\n(?P<body>.*?)```", re.S)


@pytest.fixture(scope="module")
def tauri_schema() -> dict:
    """config.schema.json from the npm package @tauri-apps/cli (v2), fetched once."""
    schema = CACHE / "package" / "config.schema.json"
    if not schema.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is needed to fetch @tauri-apps/cli's schema")
        CACHE.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([npm, "pack", "@tauri-apps/cli@2", "--silent"], cwd=CACHE, capture_output=True,
                             text=True, timeout=300, check=True).stdout.strip().splitlines()[-1]
        with tarfile.open(CACHE / out) as archive:
            archive.extract("package/config.schema.json", CACHE, filter="data")
    return json.loads(schema.read_text(encoding="utf-8"))


def snippets() -> list[tuple[str, dict]]:
    found = [(m["kind"], json.loads(m["body"])) for m in SNIPPET.finditer(DOC.read_text(encoding="utf-8"))]
    assert found, "no checked JSON snippets found"
    return found


def test_every_json_snippet_matches_tauris_schema(tauri_schema):
    from jsonschema import Draft7Validator

    kinds = set()
    for kind, document in snippets():
        kinds.add(kind)
        if kind == "tauri.conf.json":
            schema = tauri_schema
        elif kind == "capability":
            schema = {"$ref": "#/definitions/Capability", "definitions": tauri_schema["definitions"]}
        else:
            raise AssertionError(f"unknown snippet kind {kind}")
        errors = sorted(Draft7Validator(schema).iter_errors(document), key=str)
        assert not errors, f"{kind}: " + "; ".join(e.message for e in errors[:5])
    assert kinds == {"tauri.conf.json", "capability"}


def test_the_schema_check_catches_a_mistake(tauri_schema):
    from jsonschema import Draft7Validator

    broken = {"identifier": "x", "bundle": {"externalBin": "binaries/ai-gateway"}}  # must be a list
    assert list(Draft7Validator(tauri_schema).iter_errors(broken))


def test_external_bin_names_the_sidecar_the_build_makes():
    conf = dict(snippets())["tauri.conf.json"]
    assert conf["bundle"]["externalBin"] == ["binaries/ai-gateway"]
    capability = dict(snippets())["capability"]
    spawn = next(p for p in capability["permissions"] if isinstance(p, dict))
    assert spawn["allow"][0]["name"] == "binaries/ai-gateway" and spawn["allow"][0]["sidecar"] is True


def known_flags() -> set[str]:
    flags = set()
    for parser in (serve_parser(), check_parser()):
        for action in parser._actions:
            flags.update(o for o in action.option_strings if o.startswith("--"))
    build = (ROOT / "build" / "build.py").read_text(encoding="utf-8")
    flags.update(re.findall(r'add_argument\("(--[a-z\-]+)"', build))
    return flags


@pytest.mark.parametrize("doc", ["tauri-sidecar.md", "README.md"])
def test_documented_gateway_flags_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    used = set(re.findall(r"(?<![\w-])(--(?:port|host|config|log-dir|log-level|parent-pid|watch-stdin|version|"
                          r"target-triple|tauri-binaries|no-smoke|seconds|connections)[a-z\-]*)", text))
    assert used, "no flags found"
    assert used <= known_flags() | {"--seconds", "--connections"}, used - known_flags()


def test_documented_exit_codes_match_the_code():
    text = DOC.read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| ([^|]+) \|", text, re.M))
    assert {int(code) for code in table} == {int(code) for code in ExitCode}


def test_release_workflow_passes_actionlint():
    import sysconfig

    exe = Path(sysconfig.get_path("scripts")) / ("actionlint.exe" if sys.platform == "win32" else "actionlint")
    binary = str(exe) if exe.exists() else shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed (pip install -e '.[test]')")
    result = subprocess.run([binary, str(ROOT / ".github" / "workflows" / "release.yml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_config_sample_is_valid():
    from app.config import parse_config

    sample = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    config = parse_config(sample, {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-y"})
    assert {p.type for p in config.providers} == {"openai", "anthropic", "process"}
    assert config.aliases["fast"] == ("ollama/llama3.2", "openai/gpt-4o-mini")
