"""The example Tauri app (tauri/example-app) holds together: its config passes Tauri's
schema, its capabilities name only permissions and scope keys the plugins define, the
names agree across files, and its page's chat module talks to the real gateway.

Building and running the app itself needs the tauri crates (not packaged for Debian):
that runs on GitHub (.github/workflows/example-app.yml)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import pytest

from tests.gateway import ROOT, GatewayProcess
from tests.tauri_capability import check_capability
from tests.tauri_schema import load_tauri_schema, schema_errors

APP = ROOT / "tauri" / "example-app"
TAURI = APP / "src-tauri"
CONF = json.loads((TAURI / "tauri.conf.json").read_text(encoding="utf-8"))
CAPABILITIES = {
    p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((TAURI / "capabilities").glob("*.json"))
}


@pytest.fixture(scope="module")
def tauri_schema() -> dict:
    return load_tauri_schema()


def test_conf_and_capabilities_match_tauris_schema(tauri_schema):
    assert schema_errors(CONF, tauri_schema) == []
    for name, capability in CAPABILITIES.items():
        assert schema_errors(capability, tauri_schema, "Capability") == [], name


def test_capabilities_name_only_permissions_the_plugins_define():
    assert set(CAPABILITIES) == {"main", "sidecar-from-js"}
    for name, capability in CAPABILITIES.items():
        assert check_capability(capability) == [], name


def misspell(path: list, value) -> dict:
    broken = copy.deepcopy(CAPABILITIES["sidecar-from-js"])
    target = broken
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return broken


def rename_key(capability: dict, old: str, new: str) -> dict:
    broken = copy.deepcopy(capability)
    entry = broken["permissions"][0]["allow"][0]
    entry[new] = entry.pop(old)
    return broken


@pytest.mark.parametrize(
    "broken, words",
    [
        (misspell(["permissions", 0, "identifier"], "shel:allow-spwan"), "unknown permission 'shel:allow-spwan'"),
        (misspell(["permissions", 1], "shell:allow-stdin"), "unknown permission 'shell:allow-stdin'"),
        (rename_key(CAPABILITIES["sidecar-from-js"], "sidecar", "sidcar"), "unknown scope key 'sidcar'"),
        (rename_key(CAPABILITIES["sidecar-from-js"], "args", "arg"), "unknown scope key 'arg'"),
        (rename_key(CAPABILITIES["sidecar-from-js"], "name", "nmae"), "missing 'name'"),
        (misspell(["permissions", 0, "allow", 0, "args"], ["--port", {"validater": "^[0-9]+$"}]), "unknown arg key"),
        (misspell(["permissions", 0, "identifier"], "shell:allow-kill"), "takes no scope"),
        (misspell(["permissions", 0, "allow", 0, "sidecar"], "yes"), "'sidecar' must be true or false"),
    ],
)
def test_the_capability_check_catches_misspellings(broken, words, tauri_schema):
    assert any(words in error for error in check_capability(broken)), check_capability(broken)
    if words.startswith("unknown permission"):
        # what this check is for: Tauri's schema lets these through
        assert schema_errors(broken, tauri_schema, "Capability") == []


def test_names_agree_across_the_example():
    [external] = CONF["bundle"]["externalBin"]
    name = external.removeprefix("binaries/")
    assert name != "ai-gateway", "deb/rpm install the sidecar in /usr/bin: name it after the app"
    gateway_rs = (TAURI / "src" / "gateway.rs").read_text(encoding="utf-8")
    assert f'const SIDECAR: &str = "{name}";' in gateway_rs
    entry = CAPABILITIES["sidecar-from-js"]["permissions"][0]["allow"][0]
    assert entry["name"] == external and entry["sidecar"] is True
    args = ", ".join(f"'{a}'" for a in entry["args"])
    assert f"Command.sidecar('{external}', [{args}]" in (APP / "src" / "sidecar-from-js.js").read_text(encoding="utf-8")
    assert f"\\{name}.exe'" in (TAURI / "windows" / "hooks.nsh").read_text(encoding="utf-8")
    # only the Rust route is enabled; every enabled capability exists and names real windows
    assert CONF["app"]["security"]["capabilities"] == ["main"]
    labels = {w["label"] for w in CONF["app"]["windows"]}
    for capability in CAPABILITIES.values():
        assert set(capability["windows"]) <= labels
    for icon in CONF["bundle"]["icon"]:
        assert (TAURI / icon).is_file(), icon
    assert (TAURI / CONF["bundle"]["windows"]["nsis"]["installerHooks"]).is_file()
    # useHttpsScheme would make the page https:// and block http://127.0.0.1 as mixed content
    assert all("useHttpsScheme" not in w for w in CONF["app"]["windows"])
    assert "http://127.0.0.1:*" in CONF["app"]["security"]["csp"]["connect-src"]


def test_nsis_hooks_pop_what_nsexec_pushes():
    hooks = (TAURI / "windows" / "hooks.nsh").read_text(encoding="utf-8")
    assert {"NSIS_HOOK_PREINSTALL", "NSIS_HOOK_PREUNINSTALL"} <= set(re.findall(r"!macro (\w+)", hooks))
    assert hooks.count("nsExec::") == hooks.count("Pop $0")
    assert "taskkill /IM" not in hooks  # would end other apps' gateways too


def test_rust_sources_parse():
    rustfmt = shutil.which("rustfmt")
    if rustfmt is None:
        pytest.skip("rustfmt is not installed")
    for path in sorted((TAURI / "src").glob("*.rs")):
        result = subprocess.run(
            [rustfmt, "--edition", "2021", "--emit", "stdout", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def node_ready() -> str | None:
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    if not (APP / "node_modules" / "openai").is_dir():
        return "run `npm ci` in tauri/example-app (.ci/run does)"
    return None


@pytest.mark.skipif(node_ready() is not None, reason=str(node_ready()))
def test_the_pages_chat_module_streams_through_the_real_gateway(tmp_path):
    token = "example-token-123"
    with GatewayProcess(["--port", "0"], tmp=tmp_path, env={"AI_GATEWAY_TOKEN": token}) as gw:
        text = "hello from the page 你好"
        ok = subprocess.run(
            ["node", "scripts/check-chat.mjs", gw.url, token, text], cwd=APP, capture_output=True, text=True, timeout=60
        )
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"answer": text}
        wrong = subprocess.run(
            ["node", "scripts/check-chat.mjs", gw.url, "not-the-token", text],
            cwd=APP,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode != 0 and "401" in wrong.stderr


@pytest.mark.skipif(node_ready() is not None, reason=str(node_ready()))
def test_the_page_builds(tmp_path):
    result = subprocess.run(
        ["npm", "run", "build", "--", "--outDir", str(tmp_path / "dist")],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "dist" / "index.html").is_file()
