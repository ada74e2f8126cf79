"""The Windows code paths, on Windows processes: a windowed interpreter, an ANSI code page
that cannot encode most of Unicode, Job Objects for process providers, consoles,
%LOCALAPPDATA%, the process figures of /admin/stats.

They run in .ci/run's Windows stage (a real CPython for Windows and the frozen .exe under
Wine, with ANSI code page 936) and on windows-latest in the release workflow. What the
parent-pid and bootloader watches do on Windows is in test_lifecycle.py and
test_frozen.py, which run there too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests import rawhttp
from tests.gateway import ROOT, GatewayProcess, gateway_command, pid_gone, write_config
from tests.support import stream_echo, under_wine

pytestmark = pytest.mark.skipif(
    sys.platform != "win32",
    reason="Windows only: .ci/run's Windows stage runs it under Wine, the release workflow on windows-latest",
)

TEXT = "你好 世界 😀 Ünïcödé ✓"
FROZEN = bool(os.environ.get("AI_GATEWAY_CMD"))
UTF8_CODE_PAGE = 65001


def ansi_code_page() -> int:
    return ctypes.windll.kernel32.GetACP()


# -- a windowed interpreter -----------------------------------------------------------------


@pytest.mark.parametrize("module", ["app", "tests.helpers.no_stdio"])
def test_windowed_interpreter_gives_the_ready_line_and_serves(tmp_path, module):
    """pythonw.exe, as a windowed build runs: with its streams as given (pipes, in the ANSI
    code page) and with sys.stdout/sys.stderr None, which the stdio fix re-opens on the
    descriptors the supervisor passed."""
    pythonw = Path(sys.executable).with_name("pythonw.exe")
    if not pythonw.exists():
        pytest.skip(f"no pythonw.exe beside {sys.executable}")
    proc = subprocess.Popen(
        [str(pythonw), "-m", module, "--port", "0", "--watch-stdin", "--log-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        ready = orjson.loads(proc.stdout.readline())
        assert ready["event"] == "ready", ready
        assert stream_echo(ready["url"], TEXT) == TEXT
        proc.stdin.close()
        assert orjson.loads(proc.stdout.readline()) == {"event": "stopping", "reason": "stdin-eof"}
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# -- the ANSI code page -----------------------------------------------------------------------

needs_legacy_code_page = pytest.mark.skipif(
    sys.platform == "win32" and ansi_code_page() == UTF8_CODE_PAGE,
    reason="the system's ANSI code page is UTF-8: nothing to protect against",
)


def legacy_env() -> dict[str, str]:
    """No UTF-8 mode and no stream encoding from the environment: pipes use the ANSI code page."""
    return {"PYTHONIOENCODING": "", "PYTHONUTF8": "0", "PYTHONLEGACYWINDOWSSTDIO": ""}


@needs_legacy_code_page
def test_ansi_code_page_carries_cjk_and_emoji_in_requests_answers_and_logs(tmp_path):
    gw = GatewayProcess(["--port", "0"], tmp=tmp_path, env=legacy_env())
    try:
        assert stream_echo(gw.url, TEXT) == TEXT
        gw.proc.stdin.write(f"hello {TEXT}\n".encode())  # an unknown command: quoted in a warning
        gw.proc.stdin.flush()
        deadline = time.monotonic() + 10
        while TEXT not in gw.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        gw.close_stdin()
        assert gw.wait() == 0
    finally:
        gw.stop()
    assert TEXT in gw.log_text()
    assert TEXT in gw.stderr_path.read_bytes().decode("utf-8")  # stderr is UTF-8 whatever the code page


@needs_legacy_code_page
@pytest.mark.skipif(FROZEN, reason="injects the fault into the source tree's gateway")
def test_ansi_code_page_keeps_cjk_and_emoji_in_crash_records(tmp_path):
    env = {**os.environ, **legacy_env()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.crashing_gateway", "unicode", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        assert orjson.loads(proc.stdout.readline())["event"] == "ready"
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob("crash-*.log")) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.stdin.close()
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    [crash] = tmp_path.glob("crash-*.log")
    assert "injected failure 你好 世界 😀 Ünïcödé ✓" in crash.read_text(encoding="utf-8")
    assert "injected failure 你好 世界 😀" in stderr.decode("utf-8")


# -- process providers: Job Objects and consoles ------------------------------------------------


def process_config(tmp_path: Path) -> Path:
    python = sys.executable.replace("\\", "/")
    fake_model = str(ROOT / "tests" / "helpers" / "fake_model.py").replace("\\", "/")
    return write_config(
        tmp_path,
        f"""
[providers.local]
type = "process"
command = ["{python}", "{fake_model}"]
models = ["with-child", "console"]
""",
    )


def read_pids(path: Path, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().split()) == 2:
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.02)
    raise AssertionError("the program never wrote its pids")


def test_a_killed_gateway_takes_its_programs_process_tree_with_it(tmp_path):
    """TerminateProcess on the gateway: nothing of it runs any more, yet the Job Object it
    held (kill on close) ends the program and the program's child."""
    gw = GatewayProcess(["--port", "0", "--config", str(process_config(tmp_path))], tmp=tmp_path)
    try:
        pid_path = tmp_path / "pids"
        sock = rawhttp.post(
            gw.port,
            "/v1/chat/completions",
            {"model": "with-child", "stream": True, "messages": [{"role": "user", "content": f"pidfile={pid_path}"}]},
        )
        assert b"tick" in rawhttp.read_until(sock, b"tick")
        pids = read_pids(pid_path)
        os.kill(gw.pid, signal.SIGTERM)  # TerminateProcess on the gateway itself, whatever runs it
        assert pid_gone(gw.pid, 10)
        survivors = [pid for pid in pids if not pid_gone(pid, 5)]
        assert not survivors, f"outlived the gateway: {survivors} of {pids}"
        sock.close()
    finally:
        gw.stop()


def test_programs_get_a_console_without_a_window(client):
    """CREATE_NO_WINDOW: the program has a console (its own, so nothing flashes on screen)
    but no window. Without the flag it would share the gateway's console, or have none."""
    reply = client.chat.completions.create(model="console", messages=[{"role": "user", "content": "hi"}])
    console = orjson.loads(reply.choices[0].message.content)
    assert console["console_window"] == 0, console
    assert console["console_cp"] != 0, console


# -- console control events ------------------------------------------------------------------------


def has_console() -> bool:
    return bool(ctypes.windll.kernel32.GetConsoleWindow() or ctypes.windll.kernel32.GetConsoleCP())


@pytest.mark.skipif(under_wine(), reason="Wine 8: GenerateConsoleCtrlEvent cannot deliver Ctrl-Break")
def test_ctrl_break_stops_with_reason_signal(tmp_path):
    """Ctrl-Break (what a console sends; Ctrl-C is not deliverable to a process group)."""
    if not has_console():
        pytest.skip("this test process has no console to send a control event through")
    proc = subprocess.Popen(
        gateway_command() + ["--port", "0", "--watch-stdin", "--log-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
    )
    try:
        assert orjson.loads(proc.stdout.readline())["event"] == "ready"
        os.kill(proc.pid, signal.CTRL_BREAK_EVENT)  # the group: bootloader and gateway alike
        assert orjson.loads(proc.stdout.readline()) == {"event": "stopping", "reason": "signal"}
        assert proc.wait(20) == 0
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()


# -- the user's directories ---------------------------------------------------------------------


def test_log_and_config_dirs_are_under_localappdata(tmp_path):
    """Without --log-dir and --config: logs in %LOCALAPPDATA%\\ai-gateway\\Logs, and a
    config.toml in %LOCALAPPDATA%\\ai-gateway is the one used."""
    home = Path(os.environ["LOCALAPPDATA"]) / "ai-gateway"
    config = home / "config.toml"
    if config.exists():
        pytest.skip(f"{config} exists: the test does not touch a real configuration")
    home.mkdir(parents=True, exist_ok=True)
    config.write_text('[providers.e]\ntype = "echo"\n[aliases]\nfrom-localappdata = ["e/echo"]\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("AI_GATEWAY_CONFIG", "AI_GATEWAY_TOKEN")}
    proc = subprocess.Popen(
        gateway_command() + ["--port", "0", "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        ready = orjson.loads(proc.stdout.readline())
        assert ready["event"] == "ready", ready
        assert Path(ready["log_dir"]) == home / "Logs"
        models = {m["id"] for m in httpx.get(ready["url"] + "/v1/models", timeout=10).json()["data"]}
        assert "from-localappdata" in models
        proc.stdin.close()
        proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert (home / "Logs" / "gateway.log").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
        config.unlink()


# -- /admin/stats ---------------------------------------------------------------------------------


def test_admin_stats_gives_windows_figures(gateway):
    stats = httpx.get(gateway.url + "/admin/stats", timeout=10).json()
    assert stats["rss_mb"] is not None and stats["rss_mb"] > 5  # the working set, in MB
    assert stats["open_fds"] is None  # no descriptors on Windows
    if under_wine():
        assert stats["open_handles"] is None  # Wine counts no handles: unknown rather than a false 0
    else:
        assert stats["open_handles"] > 10  # GetProcessHandleCount
