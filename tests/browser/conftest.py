"""Fixtures of the engine tests: the page bundle, its server, a gateway with a token, and
one engine per module run (parametrized over WebKitGTK, Chromium and Firefox)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.browser.engines import ENGINES, PAGE_DIR, EngineMissing
from tests.browser.pageserver import PageServer
from tests.conftest import UPSTREAM_KEY
from tests.gateway import GatewayProcess, write_config

HERE = Path(__file__).resolve().parent
BROWSER_TOKEN = "browser-token-Qe29-secret"


def unavailable(reason: str) -> None:
    """Skip where an engine is missing, but fail in CI: .ci/run installs every engine, and
    a skipped engine test would hide an install step that broke."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def page_bundle() -> Path:
    """page/dist/sdk.js, built from the pinned SDKs (`npm ci` in tests/browser first)."""
    bundle = PAGE_DIR / "dist" / "sdk.js"
    source = PAGE_DIR / "sdk.js"
    if bundle.exists() and bundle.stat().st_mtime >= source.stat().st_mtime:
        return bundle
    if not (HERE / "node_modules" / ".bin" / "esbuild").exists() or shutil.which("npm") is None:
        unavailable(
            "the SDK page is not built: run `npm ci && npm run build` in tests/browser (apt-get install nodejs npm)"
        )
    subprocess.run(["npm", "run", "build"], cwd=HERE, check=True, timeout=120, capture_output=True)
    return bundle


@pytest.fixture(scope="session")
def page_server(page_bundle) -> PageServer:
    server = PageServer(PAGE_DIR).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_gateway(upstream, tmp_path_factory) -> GatewayProcess:
    """A gateway as a Tauri app runs it: token set, only the built-in Tauri origins."""
    tmp = tmp_path_factory.mktemp("browser-gateway")
    config = write_config(
        tmp,
        f"""
[timeouts]
heartbeat = 0.5

[retry]
attempts = 1

[providers.echo]
type = "echo"

[providers.up]
type = "openai"
base_url = "{upstream.base_url}"
api_key = "${{UPSTREAM_KEY}}"
models = ["*"]

[providers.claude]
type = "anthropic"
api_key = "${{MISSING_ANTHROPIC_KEY_FOR_THE_TEST}}"
models = ["claude-*"]

[aliases]
fast = ["up/text", "echo"]
""",
    )
    with GatewayProcess(
        ["--port", "0", "--config", str(config)],
        tmp=tmp,
        env={"AI_GATEWAY_TOKEN": BROWSER_TOKEN, "UPSTREAM_KEY": UPSTREAM_KEY},
    ) as gw:
        yield gw
        assert BROWSER_TOKEN not in gw.log_text() + gw.stderr(), "the token leaked into the gateway's logs"


@pytest.fixture(scope="module", params=list(ENGINES))
def engine(request, page_server):
    """One running engine for the module; missing engines skip with how to install them."""
    try:
        running = ENGINES[request.param](page_server.port)
    except EngineMissing as exc:
        unavailable(str(exc))
    yield running
    running.close()
