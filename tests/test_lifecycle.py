"""The supervisor's contract, on real processes: ready/stopping/fatal lines, every stop
path, exit codes, previous_exit, config reload."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.gateway import ROOT, GatewayProcess, gateway_command, pid_gone, write_config
from tests.support import openai_provider


def run_to_exit(args: list[str], tmp: Path, env: dict | None = None, timeout: float = 20):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("AI_GATEWAY_TOKEN", None) if "AI_GATEWAY_TOKEN" not in (env or {}) else None
    proc = subprocess.run(
        gateway_command() + args + ["--log-dir", str(tmp / "logs")],
        capture_output=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    lines = [orjson.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr.decode("utf-8", "replace")


# -- the ready line ----------------------------------------------------------------------


def test_ready_line_says_everything_a_supervisor_needs(tmp_path):
    with GatewayProcess(["--port", "0"], tmp=tmp_path) as gw:
        ready = gw.ready
        assert ready["event"] == "ready" and ready["version"]
        assert ready["host"] == "127.0.0.1" and ready["port"] > 0
        assert ready["url"] == f"http://127.0.0.1:{ready['port']}"
        assert ready["log_dir"] == str(gw.log_dir)
        assert "previous_exit" in ready
        assert httpx.get(gw.url + "/health").status_code == 200  # listening when announced


def test_stdout_carries_only_json_lines(tmp_path):
    gw = GatewayProcess(["--port", "0", "--log-level", "debug"], tmp=tmp_path)
    httpx.post(gw.url + "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    gw.close_stdin()
    assert gw.wait() == 0
    time.sleep(0.1)
    assert len(gw.raw_stdout) == 2
    assert [orjson.loads(line)["event"] for line in gw.raw_stdout] == ["ready", "stopping"]


# -- stop paths ------------------------------------------------------------------------------


def test_stdin_eof_stops_with_exit_0(tmp_path):
    gw = GatewayProcess(["--port", "0"], tmp=tmp_path)
    gw.close_stdin()
    assert gw.wait_event("stopping")["reason"] == "stdin-eof"
    assert gw.wait() == 0


def test_stdin_shutdown_line_stops(tmp_path):
    gw = GatewayProcess(["--port", "0"], tmp=tmp_path)
    gw.proc.stdin.write(b"shutdown\n")
    gw.proc.stdin.flush()
    assert gw.wait_event("stopping")["reason"] == "stdin-shutdown"
    assert gw.wait() == 0
    gw.stop()


posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")


@posix_signals
def test_sigterm_stops_with_reason_signal(tmp_path):
    gw = GatewayProcess(["--port", "0"], tmp=tmp_path)
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.wait_event("stopping")["reason"] == "signal"
    assert gw.wait() == 0
    gw.stop()


def test_admin_shutdown_answers_then_stops(tmp_path):
    gw = GatewayProcess(["--port", "0"], tmp=tmp_path)
    response = httpx.post(gw.url + "/admin/shutdown", json={})
    assert response.status_code == 200 and response.json()["status"] == "stopping"
    assert gw.wait_event("stopping")["reason"] == "shutdown-request"
    assert gw.wait() == 0
    gw.stop()


def test_parent_death_stops_the_gateway(tmp_path):
    """An app killed with SIGKILL: its gateway, with --parent-pid, is gone within seconds."""
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.parent", str(tmp_path / "logs")], stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        ready = orjson.loads(parent.stdout.readline())
        assert ready["event"] == "ready"
        parent.kill()
        parent.wait(5)
        assert pid_gone(ready["pid"], 5), "the gateway outlived its parent"
        assert orjson.loads(parent.stdout.readline()) == {"event": "stopping", "reason": "parent-exit"}
    finally:
        parent.kill()


@posix_signals
def test_sigterm_during_a_stream_drains_then_ends_it_honestly(tmp_path, upstream):
    config = write_config(
        tmp_path,
        f"""
[server]
drain_seconds = 1
{openai_provider("up", upstream.base_url)}""",
    )
    gw = GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp_path)
    received: list[str] = []
    first = threading.Event()

    def consume():
        body = {"model": "long-stream:sigterm", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=30) as response:
            for text in response.iter_text():  # raises if the stream is not ended properly
                received.append(text)
                first.set()
        received.append("<clean end>")

    reader = threading.Thread(target=consume)
    reader.start()
    assert first.wait(5)
    started = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.wait_event("stopping")["reason"] == "signal"
    assert gw.wait(10) == 0
    assert time.monotonic() - started < 6
    reader.join(5)
    text = "".join(received)
    assert "data: [DONE]" not in text
    assert '"code":"gateway_stopping"' in text
    assert text.endswith("<clean end>")
    seen = upstream.requests_for("long-stream:sigterm")[-1]
    assert seen.peer_closed.wait(2)


# -- failures before ready: fatal line and exit code ------------------------------------------


@pytest.mark.parametrize("args", [["--bogus"], ["--port", "abc"], ["--port", "70000"], ["--parent-pid", "x"]])
def test_bad_command_line_is_64(tmp_path, args):
    code, lines, stderr = run_to_exit(args, tmp_path)
    assert code == 64
    assert lines and lines[-1]["event"] == "fatal" and lines[-1]["code"] == 64
    assert "usage" in stderr


def test_a_host_that_is_no_address_is_a_bad_command_line_not_a_restart(tmp_path):
    """75 would make a supervisor restart a gateway that can never bind."""
    code, lines, _ = run_to_exit(
        ["--port", "0", "--host", "no-such-host.invalid"], tmp_path, env={"AI_GATEWAY_TOKEN": "tok-123456"}
    )
    assert code == 64 and lines[-1]["code"] == 64


@pytest.mark.parametrize("host", ["[::1]", "localhost"])
def test_the_announced_url_is_the_bound_address(tmp_path, host):
    import socket as socket_module

    if host == "[::1]" and not socket_module.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        gw = GatewayProcess(["--port", "0", "--host", host], tmp=tmp_path)
    except (EOFError, TimeoutError) as exc:
        if host == "[::1]" and "Cannot assign" in str(exc):
            pytest.skip("::1 is not configured here")
        raise
    with gw:
        assert gw.ready["url"].startswith(("http://127.0.0.1:", "http://[::1]:")), gw.ready
        assert httpx.get(gw.url + "/health", timeout=5).status_code == 200


def test_a_token_with_surrounding_whitespace_is_refused_at_start(tmp_path):
    code, lines, _ = run_to_exit(["--port", "0"], tmp_path, env={"AI_GATEWAY_TOKEN": " tok-123456 "})
    assert code == 78 and "whitespace" in lines[-1]["error"]


def test_invalid_config_is_78_naming_key_and_line(tmp_path):
    config = write_config(tmp_path, '[server]\nport = "eighty"\n')
    code, lines, _ = run_to_exit(["--config", str(config)], tmp_path)
    assert code == 78
    fatal = lines[-1]
    assert fatal["event"] == "fatal" and fatal["code"] == 78
    assert "server.port" in fatal["error"] and "line 2" in fatal["error"]


def test_missing_config_file_is_78(tmp_path):
    code, lines, _ = run_to_exit(["--config", str(tmp_path / "nope.toml")], tmp_path)
    assert code == 78 and "not found" in lines[-1]["error"]


def test_port_in_use_is_75(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines, _ = run_to_exit(["--port", str(port)], tmp_path)
    assert code == 75
    assert lines[-1]["event"] == "fatal" and lines[-1]["code"] == 75


def test_non_loopback_host_without_token_is_78(tmp_path):
    code, lines, _ = run_to_exit(["--host", "0.0.0.0", "--port", "0"], tmp_path)
    assert code == 78 and "AI_GATEWAY_TOKEN" in lines[-1]["error"]


def test_non_loopback_host_with_token_starts(tmp_path):
    with GatewayProcess(
        ["--host", "0.0.0.0", "--port", "0"], tmp=tmp_path, env={"AI_GATEWAY_TOKEN": "tok-test-123456"}
    ) as gw:
        assert gw.ready["host"] == "0.0.0.0"


def test_version(tmp_path):
    proc = subprocess.run(gateway_command() + ["--version"], capture_output=True, cwd=ROOT, timeout=20)
    assert proc.returncode == 0 and proc.stdout.decode().strip() == "0.1.0"


def test_check_config(tmp_path):
    good = write_config(tmp_path, '[providers.e]\ntype = "echo"\n[aliases]\nfast = ["e/echo"]\n')
    proc = subprocess.run(
        gateway_command() + ["check-config", "--config", str(good)], capture_output=True, cwd=ROOT, timeout=20
    )
    assert proc.returncode == 0 and b"alias fast" in proc.stdout
    bad = write_config(tmp_path, '[providers.e]\ntype = "warp"\n')
    proc = subprocess.run(
        gateway_command() + ["check-config", "--config", str(bad)], capture_output=True, cwd=ROOT, timeout=20
    )
    assert proc.returncode == 78 and b"providers.e.type" in proc.stderr


# -- previous_exit ---------------------------------------------------------------------------


def test_previous_exit_is_null_after_a_clean_stop_and_unclean_after_sigkill(tmp_path):
    first = GatewayProcess(["--port", "0"], tmp=tmp_path)
    first.stop()
    second = GatewayProcess(["--port", "0"], tmp=tmp_path)
    assert second.ready["previous_exit"] is None
    # the gateway process itself: killing a onefile build's bootloader leaves its child to
    # notice and stop cleanly, which is not the death this test is about
    os.kill(second.pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # SIGTERM is TerminateProcess on Windows
    second.proc.wait(5)
    assert pid_gone(second.pid, 10)  # a onefile build's gateway outlives its bootloader a moment
    third = GatewayProcess(["--port", "0"], tmp=tmp_path)
    previous = third.ready["previous_exit"]
    assert previous["pid"] == second.pid
    # the gateway process itself died without a word (a killed onefile bootloader is
    # another story: test_previous_exit_reports_a_killed_bootloader)
    assert previous["reason"] == "unclean" and previous["code"] is None
    third.stop()
    last = orjson.loads((tmp_path / "logs" / "last-exit.json").read_bytes())
    assert last["code"] == 0 and last["reason"] == "stdin-eof"


def test_runs_that_share_a_log_dir_report_only_the_one_that_died(tmp_path):
    # the app's sidecar and the same exe started by hand, with the default log dir
    sidecar = GatewayProcess(["--port", "0"], tmp=tmp_path)
    by_hand = GatewayProcess(["--port", "0"], tmp=tmp_path)
    assert by_hand.ready["previous_exit"] is None, "a run that is still serving was reported dead"
    sidecar.stop()  # a clean stop must not wipe out what the other run left
    os.kill(by_hand.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    by_hand.proc.wait(5)
    assert pid_gone(by_hand.pid, 10)
    with GatewayProcess(["--port", "0"], tmp=tmp_path) as next_run:
        previous = next_run.ready["previous_exit"]
        assert previous["reason"] == "unclean" and previous["pid"] == by_hand.pid
    with GatewayProcess(["--port", "0"], tmp=tmp_path) as after:  # reported once
        assert after.ready["previous_exit"] is None


def test_previous_exit_reports_a_failed_start(tmp_path):
    config = write_config(tmp_path, "[server]\nport = -1\n")
    code, _, _ = run_to_exit(["--config", str(config)], tmp_path)
    assert code == 78
    with GatewayProcess(["--port", "0"], tmp=tmp_path) as gw:
        assert gw.ready["previous_exit"]["code"] == 78
        assert gw.ready["previous_exit"]["reason"] == "invalid-config"


# -- reload ----------------------------------------------------------------------------------

RELOAD_BASE = '[providers.echo]\ntype = "echo"\n'


def models(gw) -> set[str]:
    return {m["id"] for m in httpx.get(gw.url + "/v1/models").json()["data"]}


def test_reload_over_http_and_refusal_keeps_the_old_config(tmp_path):
    config = write_config(tmp_path, RELOAD_BASE)
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp_path) as gw:
        assert "later" not in models(gw)
        config.write_text(RELOAD_BASE + '[aliases]\nlater = ["echo"]\n')
        response = httpx.post(gw.url + "/admin/reload", json={})
        assert response.status_code == 200, response.text
        assert "later" in models(gw)
        config.write_text(RELOAD_BASE + "[aliases]\nlater = 5\n")
        refused = httpx.post(gw.url + "/admin/reload", json={})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_config"
        assert "aliases.later" in refused.json()["error"]["message"]
        assert "later" in models(gw)
        # a POST with no body needs no content type; one of length 0 is as good (urllib's)
        for headers in ({}, {"content-length": "0"}):
            assert httpx.post(gw.url + "/admin/reload", headers=headers).status_code == 400
        assert "not consumed" not in gw.log_text() + gw.stderr()


@pytest.mark.parametrize(
    "how",
    ["stdin", pytest.param("sighup", marks=pytest.mark.skipif(sys.platform == "win32", reason="no SIGHUP on Windows"))],
)
def test_reload_from_stdin_and_sighup(tmp_path, how):
    config = write_config(tmp_path, RELOAD_BASE)
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp_path) as gw:
        config.write_text(RELOAD_BASE + '[aliases]\nviahow = ["echo"]\n')
        if how == "stdin":
            gw.proc.stdin.write(b"reload\n")
            gw.proc.stdin.flush()
        else:
            gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "viahow" not in models(gw) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "viahow" in models(gw)


def test_requests_in_flight_finish_on_the_old_config(tmp_path, upstream):
    config = write_config(
        tmp_path,
        f"""
{openai_provider("up", upstream.base_url)}""",
    )
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp_path) as gw:
        body = {"model": "slow-drip:reload", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=30) as response:
            chunks = response.iter_text()
            next(chunks)
            config.write_text(RELOAD_BASE)
            assert httpx.post(gw.url + "/admin/reload", json={}).status_code == 200
            rest = "".join(chunks)
        assert rest.endswith("data: [DONE]\n\n")
        assert "slow-drip:reload" not in models(gw)
        missing = httpx.post(gw.url + "/v1/chat/completions", json={**body, "stream": False})
        assert missing.status_code == 404


def test_admin_posts_need_no_body(tmp_path):
    config = write_config(tmp_path, RELOAD_BASE)
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp_path) as gw:
        reloaded = httpx.post(gw.url + "/admin/reload")
        assert reloaded.status_code == 200, reloaded.text
        empty_chat = httpx.post(gw.url + "/v1/chat/completions")
        assert empty_chat.status_code == 400 and empty_chat.json()["error"]["code"] == "invalid_json"
        assert httpx.post(gw.url + "/admin/shutdown").status_code == 200
        assert gw.wait(10) == 0


def test_reload_applies_client_settings_and_names_what_needs_a_restart(tmp_path, upstream):
    base = f"""
{openai_provider("up", upstream.base_url)}"""
    config = write_config(tmp_path, base)
    with GatewayProcess(["--port", "0", "--config", str(config)], tmp=tmp_path) as gw:
        chat = {"model": "text", "messages": [{"role": "user", "content": "x"}]}
        assert httpx.post(gw.url + "/v1/chat/completions", json=chat).status_code == 200
        pooled = upstream.open_connections  # the answer's connection stays pooled, idle
        config.write_text("[server]\nport = 1\nmax_body_mb = 2\nupstream_connections = 16\n" + base)
        reply = httpx.post(gw.url + "/admin/reload").json()
        assert reply["restart_needed"] == ["server.max_body_mb"]  # --port decides the port
        stats = httpx.get(gw.url + "/admin/stats").json()
        assert stats["upstream_pool"]["limit"] == 16  # a new client, built from the new settings
        deadline = time.monotonic() + 5  # and the old one is closed, its idle connection too
        while upstream.open_connections >= pooled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.open_connections < pooled
        assert httpx.post(gw.url + "/v1/chat/completions", json=chat).status_code == 200
        config.write_text(base)  # back to what it started with: nothing waits for a restart
        assert httpx.post(gw.url + "/admin/reload").json()["restart_needed"] == []
