"""Freeze the gateway into one file named as Tauri's `bundle.externalBin` expects.

    python build/build.py [--target-triple TRIPLE] [--tauri-binaries DIR [--sidecar-name NAME]] [--no-smoke]

Produces dist/ai-gateway-<triple>[.exe], prints its size, and smoke-runs it: --version,
then a start on --port 0 with --watch-stdin, the ready line, /health, one streamed chat
through the echo model, stdin closed, exit 0.

It freezes from an interpreter that holds only the runtime and build dependencies:
PyInstaller's hooks follow optional imports, so whatever else is installed (the test
dependencies: openai, pydantic, hypothesis...) can end up in the binary (10.8 MB for
Windows without them, 12.7 MB with). Run from any other interpreter, it makes (or
refreshes) the virtual environment build/venv with `pip install -e .[build]` and runs
itself there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec" / "ai-gateway.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "work"
VENV = ROOT / "build" / "venv"
#: installed in any environment, never frozen (the spec excludes them)
TOOLING = {"pip", "setuptools", "wheel", "ai-gateway"}


def host_triple() -> str:
    """Rust's host triple: from `rustc -vV` when rustc exists, else from the platform."""
    rustc = shutil.which("rustc")
    if rustc:
        try:
            out = subprocess.run([rustc, "-vV"], capture_output=True, text=True, check=True, timeout=30).stdout
            for line in out.splitlines():
                if line.startswith("host:"):
                    return line.split(":", 1)[1].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return triple_from_platform(sys.platform, platform.machine())


def triple_from_platform(system: str, machine: str) -> str:
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(
        machine.lower()
    )
    if arch is None:
        raise SystemExit(f"unsupported machine {machine!r}; pass --target-triple")
    if system == "win32":
        return f"{arch}-pc-windows-msvc"
    if system == "darwin":
        return f"{arch}-apple-darwin"
    if system.startswith("linux"):
        return f"{arch}-unknown-linux-gnu"
    raise SystemExit(f"unsupported platform {system!r}; pass --target-triple")


def binary_name(triple: str) -> str:
    return f"ai-gateway-{triple}" + (".exe" if "windows" in triple else "")


def unneeded_packages() -> list[str]:
    """Installed distributions that neither the gateway nor the freeze needs."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    needed = set(TOOLING)
    pending = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["build"]]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in needed or name not in installed:
            continue
        needed.add(name)
        extras = {""} | set(requirement.extras)
        for text in installed[name].requires or []:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                pending.append(child)
    return sorted(set(installed) - needed)


def use_build_venv() -> None:
    """Re-runs this script in build/venv, made or refreshed with only `.[build]`."""
    python = VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not python.exists():
        print(f"creating {VENV.relative_to(ROOT)} (runtime and build dependencies only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[build]"], check=True, timeout=900)
    code = subprocess.run([str(python), str(Path(__file__).resolve()), *sys.argv[1:]]).returncode
    raise SystemExit(code)


def freeze(name: str) -> Path:
    stem = name.removesuffix(".exe")
    env = {**os.environ, "AI_GATEWAY_BIN_NAME": stem}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(DIST),
            "--workpath",
            str(WORK),
            str(SPEC),
        ],
        check=True,
        env=env,
        cwd=ROOT,
    )
    return DIST / name


def smoke(binary: Path) -> None:
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    print(f"smoke: --version -> {version.stdout.strip()}")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary), "--port", "0", "--watch-stdin", "--log-dir", str(WORK / "smoke-logs")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready", ready
        print(f"smoke: ready in {time.perf_counter() - started:.2f} s at {ready['url']}")
        with urllib.request.urlopen(ready["url"] + "/health", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        body = json.dumps(
            {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "frozen 你好 👋"}]}
        ).encode()
        request = urllib.request.Request(
            ready["url"] + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
        )
        text = ""
        with urllib.request.urlopen(request, timeout=10) as response:
            stream = response.read().decode()
        for line in stream.splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
        assert text == "frozen 你好 👋" and stream.endswith("data: [DONE]\n\n"), stream
        print("smoke: streamed chat through echo OK")
        proc.stdin.close()
        code = proc.wait(20)
        assert code == 0, f"exit code {code}"
        print("smoke: stdin closed -> exit 0")
    finally:
        if proc.poll() is None:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-triple", help="override the detected Rust host triple")
    parser.add_argument("--tauri-binaries", type=Path, help="also copy the binary into this src-tauri/binaries dir")
    parser.add_argument(
        "--sidecar-name",
        default="ai-gateway",
        help="name of the copy in --tauri-binaries (name it after your app: deb and rpm install it in /usr/bin)",
    )
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke run")
    args = parser.parse_args()

    extra = unneeded_packages()
    if extra:
        if Path(sys.prefix).resolve() == VENV.resolve():
            raise SystemExit(
                f"{VENV} holds packages the gateway does not need ({', '.join(extra)}): delete it and run again"
            )
        print(
            f"{sys.executable} also holds {', '.join(extra[:6])}{'...' if len(extra) > 6 else ''}; "
            "freezing from build/venv instead",
            flush=True,
        )
        use_build_venv()
    print(f"freezing with {sys.executable}: runtime and build dependencies only", flush=True)

    triple = args.target_triple or host_triple()
    name = binary_name(triple)
    built = freeze(name)
    if not built.exists():
        raise SystemExit(f"PyInstaller did not produce {built}")
    size = built.stat().st_size
    print(f"built {built.relative_to(ROOT)}: {size / 1e6:.1f} MB")
    if not args.no_smoke:
        smoke(built)
    if args.tauri_binaries:
        args.tauri_binaries.mkdir(parents=True, exist_ok=True)
        copy = args.tauri_binaries / name.replace("ai-gateway", args.sidecar_name, 1)
        shutil.copy2(built, copy)
        print(f"copied to {copy}")


if __name__ == "__main__":
    main()
