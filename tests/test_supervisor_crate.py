"""`cargo test` of the Rust supervisor crate (tauri/supervisor), in the ordinary test run.

Its tests drive the real gateway: this source tree through this Python, and the frozen
binary when AI_GATEWAY_CMD names one. Here, crates come from Debian's packaged registry
(`.ci/run` installs librust-serde-json-dev and librust-libc-dev) through a cargo config
used only by this test; on GitHub's runners, from crates.io."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway import ROOT

CRATE = ROOT / "tauri" / "supervisor"
DEBIAN_REGISTRY = Path("/usr/share/cargo/registry")
NEEDED = ("serde_json-", "libc-")


def cargo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("AI_GATEWAY_TOKEN", None)
    env["AI_GATEWAY_PYTHON"] = sys.executable
    env["CARGO_TARGET_DIR"] = str(ROOT / ".cache" / "cargo-target")
    custom = shlex.split(os.environ.get("AI_GATEWAY_CMD", ""))
    if len(custom) == 1 and Path(custom[0]).is_file():
        env["AI_GATEWAY_BINARY"] = str(Path(custom[0]).resolve())
    if not env.get("GITHUB_ACTIONS"):
        # offline, from Debian's registry: a CARGO_HOME of our own holds the source replacement
        home = tmp_path / "cargo-home"
        home.mkdir()
        shutil.copy(ROOT / ".ci" / "cargo-debian.toml", home / "config.toml")
        env["CARGO_HOME"] = str(home)
    return env


@pytest.mark.timeout(900)
def test_supervisor_crate_passes_cargo_test_against_the_real_gateway(tmp_path):
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed")
    if not os.environ.get("GITHUB_ACTIONS"):
        present = os.listdir(DEBIAN_REGISTRY) if DEBIAN_REGISTRY.is_dir() else []
        missing = [n for n in NEEDED if not any(p.startswith(n) for p in present)]
        if missing:
            pytest.skip(
                f"Debian's crates are missing from {DEBIAN_REGISTRY}: "
                "apt-get install librust-serde-json-dev librust-libc-dev"
            )
    env = cargo_env(tmp_path)
    # cargo may use the rustup toolchain of the user running it, not CARGO_HOME's
    if "RUSTUP_HOME" not in env and (Path.home() / ".rustup").is_dir():
        env["RUSTUP_HOME"] = str(Path.home() / ".rustup")
    args = [cargo, "test", "--quiet"] + ([] if env.get("GITHUB_ACTIONS") else ["--offline"])
    result = subprocess.run(args, cwd=CRATE, env=env, capture_output=True, text=True, timeout=850)
    output = result.stdout[-6000:] + result.stderr[-6000:]
    assert result.returncode == 0, output
    assert "test result: ok" in result.stdout, output
