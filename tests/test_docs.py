"""The documents for app authors cannot rot silently: every code block of
tauri-sidecar.md is copied from the example app (tauri/example-app), which its own tests
check against Tauri's schema and the plugins' permissions; the flags are checked against
the gateway's parser, the exit codes against the code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import check_parser, serve_parser
from app.runtime.lifecycle import ExitCode
from tests.gateway import ROOT

DOC = ROOT / "tauri-sidecar.md"
BLOCK = re.compile(r"(?:<!-- from: (?P<path>[^ ]+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
CODE_LANGS = {"rust", "js", "json", "nsis", "toml", "xml", "html"}


def copy_problems(text: str) -> list[str]:
    """Blocks that are not copied verbatim from the file their marker names, and code
    blocks without a marker."""
    problems = []
    for m in BLOCK.finditer(text):
        if m["path"] is None:
            if m["lang"] in CODE_LANGS:
                problems.append(f"a {m['lang']} block names no file: {m['body'][:60]!r}")
            continue
        source = ROOT / m["path"]
        if not source.is_file():
            problems.append(f"{m['path']} does not exist")
        elif m["body"].rstrip("\n") not in source.read_text(encoding="utf-8"):
            problems.append(f"the block from {m['path']} differs from the file")
    return problems


def test_every_code_block_is_copied_from_the_example_app():
    text = DOC.read_text(encoding="utf-8")
    assert copy_problems(text) == []
    copied = {m["path"] for m in BLOCK.finditer(text) if m["path"]}
    whole = {
        "tauri/example-app/src-tauri/tauri.conf.json",
        "tauri/example-app/src-tauri/src/gateway.rs",
        "tauri/example-app/src-tauri/src/lib.rs",
        "tauri/example-app/src-tauri/src/update.rs",
        "tauri/example-app/src-tauri/windows/hooks.nsh",
        "tauri/example-app/src-tauri/capabilities/main.json",
        "tauri/example-app/src-tauri/capabilities/sidecar-from-js.json",
        "tauri/example-app/src/gateway.js",
        "tauri/example-app/src/sidecar-from-js.js",
    }
    assert whole <= copied
    for path in whole:  # these are shown whole, not in part
        body = next(m["body"] for m in BLOCK.finditer(text) if m["path"] == path)
        assert body.rstrip("\n") == (ROOT / path).read_text(encoding="utf-8").rstrip("\n"), path


def test_the_copy_check_catches_an_edited_block():
    text = DOC.read_text(encoding="utf-8")
    edited = text.replace("supervisor.stop(timeout);", "supervisor.stop(timeout * 2);", 1)
    assert edited != text
    assert copy_problems(edited) == ["the block from tauri/example-app/src-tauri/src/gateway.rs differs from the file"]
    unmarked = text.replace("<!-- from: tauri/example-app/src-tauri/src/lib.rs -->\n", "", 1)
    assert len(copy_problems(unmarked)) == 1 and "names no file" in copy_problems(unmarked)[0]


def known_flags() -> set[str]:
    flags = set()
    for parser in (serve_parser(), check_parser()):
        for action in parser._actions:
            flags.update(o for o in action.option_strings if o.startswith("--"))
    build = (ROOT / "build" / "build.py").read_text(encoding="utf-8")
    flags.update(re.findall(r'add_argument\(\s*"(--[a-z\-]+)"', build))
    return flags


@pytest.mark.parametrize("doc", ["tauri-sidecar.md", "README.md"])
def test_documented_gateway_flags_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    used = set(
        re.findall(
            r"(?<![\w-])(--(?:port|host|config|log-dir|log-level|parent-pid|watch-stdin|version|"
            r"target-triple|tauri-binaries|sidecar-name|no-smoke|seconds|connections)[a-z\-]*)",
            text,
        )
    )
    assert used, "no flags found"
    assert used <= known_flags() | {"--seconds", "--connections"}, used - known_flags()


def test_documented_exit_codes_match_the_code():
    text = DOC.read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| ([^|]+) \|", text, re.M))
    assert {int(code) for code in table} == {int(code) for code in ExitCode}


@pytest.mark.parametrize("workflow", sorted(p.name for p in (ROOT / ".github" / "workflows").glob("*.yml")))
def test_workflows_pass_actionlint(workflow):
    import sysconfig

    exe = Path(sysconfig.get_path("scripts")) / ("actionlint.exe" if sys.platform == "win32" else "actionlint")
    binary = str(exe) if exe.exists() else shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [binary, str(ROOT / ".github" / "workflows" / workflow)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_config_sample_is_valid():
    from app.config import parse_config

    sample = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    config = parse_config(sample, {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-y"})
    assert {p.type for p in config.providers} == {"openai", "anthropic", "gemini", "azure", "process"}
    assert config.aliases["fast"] == ("ollama/llama3.2", "openai/gpt-4o-mini")
