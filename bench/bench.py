"""Overhead, throughput, memory and start-up of the gateway against a fast real upstream.

nginx serves a fixed chat completion (JSON) and a fixed SSE stream; wrk drives load,
first at nginx directly, then through the gateway, so the difference is the gateway's.
Prints numbers and ratios; asserts nothing.

    python bench/bench.py [--seconds 5] [--connections 1,16,64]

Needs `nginx` and `wrk` on PATH (Debian: apt-get install nginx wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.gateway import GatewayProcess, gateway_command  # noqa: E402

COMPLETION = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1745000000, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
}).decode()


def _sse_body() -> str:
    events = []
    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1745000000,
            "model": "gpt-4o-mini"}
    events.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]})
    for word in words:
        events.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    text = "".join(f"data: {orjson.dumps(e).decode()}\n\n" for e in events)
    return text + "data: [DONE]\n\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"nginx exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("nginx did not start listening")


def nginx_conf(port: int, tmp: Path) -> str:
    def quote(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = /json/v1/chat/completions {{
            default_type application/json;
            return 200 {quote(COMPLETION)};
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            return 200 {quote(_sse_body())};
        }}
    }}
}}
"""


def gateway_config(port: int) -> str:
    return f"""
[timeouts]
heartbeat = 15

[providers.njson]
type = "openai"
base_url = "http://127.0.0.1:{port}/json/v1"
models = ["bench-json"]

[providers.nsse]
type = "openai"
base_url = "http://127.0.0.1:{port}/sse/v1"
models = ["bench-sse"]
"""


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
"""


def run_wrk(url: str, body: str, connections: int, seconds: float, tmp: Path) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT.replace('os.getenv("BENCH_BODY")', "[[" + body + "]]"))
    threads = 1 if connections == 1 else 2
    proc = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"wrk failed: {proc.stdout}{proc.stderr}")
    return parse_wrk(proc.stdout)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str) -> dict[str, float]:
    result: dict[str, float] = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(match.group(1)) if match else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        result[f"p{pct}"] = _ms(m.group(1), m.group(2)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = float(m.group(1)) if m else 0.0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def startup_seconds(tmp: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        gw = GatewayProcess(["--port", "0"], tmp=tmp)
        times.append(time.perf_counter() - start)
        gw.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--startup-runs", type=int, default=7)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install nginx wrk)")
    connections = [int(c) for c in args.connections.split(",")]

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(nginx_conf(port, tmp))
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)])
        try:
            wait_listening(port, nginx)
            starts = startup_seconds(tmp, args.startup_runs)
            cfg = tmp / "bench.toml"
            cfg.write_text(gateway_config(port))
            gw = GatewayProcess(["--port", "0", "--config", str(cfg), "--log-level", "warning"], tmp=tmp)
            try:
                time.sleep(1.0)
                idle_rss = rss_mb(gw.pid)
                print(f"gateway command: {' '.join(gateway_command())}")
                print(f"start-up to ready: median {statistics.median(starts) * 1000:.0f} ms "
                      f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f}, {len(starts)} runs)")
                print(f"idle RSS: {idle_rss:.1f} MB")
                print()
                header = (f"{'mode':<7}{'conns':>6}{'req/s':>10}{'direct':>10}{'p50 ms':>9}{'p99 ms':>9}"
                          f"{'added p50':>11}{'CPU ms/req':>12}{'errors':>8}")
                print(header)
                print("-" * len(header))
                for mode, model, path in (("json", "bench-json", "/json/v1/chat/completions"),
                                          ("stream", "bench-sse", "/sse/v1/chat/completions")):
                    body = orjson.dumps({"model": model, "stream": mode == "stream",
                                         "messages": [{"role": "user", "content": "Hello"}]}).decode()
                    for c in connections:
                        direct = run_wrk(f"http://127.0.0.1:{port}{path}", body, c, args.seconds, tmp)
                        cpu0 = cpu_seconds(gw.pid)
                        through = run_wrk(gw.url + "/v1/chat/completions", body, c, args.seconds, tmp)
                        cpu = (cpu_seconds(gw.pid) - cpu0) / max(through["requests"], 1) * 1000
                        print(f"{mode:<7}{c:>6}{through['rps']:>10.0f}{direct['rps']:>10.0f}"
                              f"{through['p50']:>9.2f}{through['p99']:>9.2f}"
                              f"{through['p50'] - direct['p50']:>11.2f}{cpu:>12.2f}{through['errors']:>8.0f}")
                print()
                print(f"loaded RSS: {rss_mb(gw.pid):.1f} MB now, {rss_mb(gw.pid, 'VmHWM'):.1f} MB peak")
                print("\nPeers measured on this machine class (issue text): Portkey 1.15 ~430 req/s non-stream "
                      "at 1 conn, 1.9 ms added p50, 2 CPU ms/req, 72 MB idle, 0.8 s start; "
                      "LiteLLM 1.108 ~25 req/s, 37 CPU ms/req, 330 MB, 13 s start.")
            finally:
                gw.stop()
        finally:
            nginx.terminate()
            nginx.wait(5)


if __name__ == "__main__":
    main()
