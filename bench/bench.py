"""Throughput and CPU of the gateway, a no-feature Python floor and Portkey, side by side in one run.

nginx serves a fixed chat completion (JSON) and fixed SSE streams; wrk drives load. Every
target runs pinned to one core, nginx and wrk to the other, and the targets take turns:
each measured point is several short rounds, the targets in a rotating order, so the
noise of a shared machine falls on all of them alike; the medians are compared. Only
figures from the same run are ever set side by side. Prints numbers and ratios; asserts
nothing.

    python bench/bench.py [--seconds 3] [--rounds 3] [--connections 16,64] [--targets gateway,floor,portkey]

Needs `nginx` and `wrk` on PATH, and Portkey installed under bench/portkey: see bench/setup.
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
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.gateway import GatewayProcess, gateway_command  # noqa: E402

PORTKEY = ROOT / "bench" / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
TARGET_CORE, LOAD_CORE = "0", "1"
WORDS = [
    "Hello",
    "!",
    " How",
    " can",
    " I",
    " help",
    " you",
    " today",
    "?",
    " Ask",
    " me",
    " anything",
    ":",
    " code",
    ",",
    " text",
    " or",
    " ideas",
    ".",
]
#: a short answer and a long one: the difference in CPU between them, per extra chunk, is
#: what one chunk costs (per request costs cancel out)
SHORT_CHUNKS, LONG_CHUNKS = len(WORDS) + 2, 10 * len(WORDS) + 2

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1745000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(WORDS)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": len(WORDS), "total_tokens": 9 + len(WORDS)},
    }
).decode()


def sse_body(repeat: int) -> str:
    """role chunk, the words (`repeat` times), finish chunk, [DONE]: as OpenAI streams them."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1745000000, "model": "gpt-4o-mini"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for word in WORDS * repeat:
        events.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {orjson.dumps(e).decode()}\n\n" for e in events) + "data: [DONE]\n\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name} did not start listening")


def pin(pid: int, core: str) -> None:
    """Every thread of `pid` onto `core` (node and the gateway run helper threads)."""
    subprocess.run(["taskset", "-a", "-p", "-c", core, str(pid)], check=True, stdout=subprocess.DEVNULL)


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
            return 200 {quote(sse_body(1))};
        }}
        # too long for `return`: a file, which nginx serves to a POST through the 405 page
        location = /long/v1/chat/completions {{
            root {tmp}/www;
            default_type text/event-stream;
            error_page 405 =200 $uri;
        }}
    }}
}}
"""


def gateway_config(port: int) -> str:
    return "\n".join(
        f"""
[providers.{mode}]
type = "openai"
base_url = "http://127.0.0.1:{port}/{mode}/v1"
models = ["bench-{mode}"]
"""
        for mode in ("json", "sse", "long")
    )


def start_upstream(tmp: Path) -> tuple[int, subprocess.Popen]:
    """nginx on the load core, serving the fixed answers; returns its port and process."""
    upstream = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(upstream, tmp))
    long_file = tmp / "www" / "long" / "v1" / "chat" / "completions"
    long_file.parent.mkdir(parents=True)
    long_file.write_text(sse_body(10))
    for path in [tmp, *(tmp / "www").rglob("*")]:  # nginx's workers may run as another user
        path.chmod(0o755)
    nginx = subprocess.Popen(["taskset", "-c", LOAD_CORE, "nginx", "-c", str(conf), "-p", str(tmp)])
    wait_listening(upstream, nginx, "nginx")
    return upstream, nginx


@dataclass
class Target:
    name: str
    url: str
    pid: int
    #: (mode) -> (extra headers, request body)
    requests: dict[str, tuple[dict[str, str], bytes]] = field(default_factory=dict)
    stop: object = None


def chat_body(model: str, stream: bool) -> bytes:
    return orjson.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Hello"}]})


MODES = {"json": False, "sse": True, "long": True}


def start_gateway(tmp: Path, upstream: int) -> Target:
    cfg = tmp / "bench.toml"
    cfg.write_text(gateway_config(upstream))
    gw = GatewayProcess(["--port", "0", "--config", str(cfg), "--log-level", "warning"], tmp=tmp)
    target = Target("gateway", gw.url + "/v1/chat/completions", gw.pid, stop=gw.stop)
    for mode, stream in MODES.items():
        target.requests[mode] = ({}, chat_body(f"bench-{mode}", stream))
    return target


def start_floor(tmp: Path, upstream: int) -> Target:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "floor.py"),
            "--port",
            str(port),
            "--upstream",
            f"http://127.0.0.1:{upstream}",
        ],
        stderr=open(tmp / "floor.log", "wb"),
    )  # noqa: SIM115 (wrk's last resets)
    wait_listening(port, proc, "the floor")
    target = Target(
        "floor", f"http://127.0.0.1:{port}/v1/chat/completions", proc.pid, stop=lambda: (proc.terminate(), proc.wait(5))
    )
    for mode, stream in MODES.items():
        # the floor picks its upstream path from `stream`: the long stream has a route of its own
        target.requests[mode] = ({"x-bench-path": mode}, chat_body("gpt-4o-mini", stream))
    return target


def start_portkey(tmp: Path, upstream: int) -> Target:
    if not PORTKEY.exists():
        sys.exit(f"Portkey is not installed ({PORTKEY}): run bench/setup, or leave it out with --targets")
    port = free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    proc = subprocess.Popen(
        ["node", str(PORTKEY), f"--port={port}", "--headless"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "portkey.log", "wb"),
    )  # noqa: SIM115
    wait_listening(port, proc, "Portkey")
    target = Target(
        "portkey",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        proc.pid,
        stop=lambda: (proc.terminate(), proc.wait(5)),
    )
    for mode, stream in MODES.items():
        headers = {
            "x-portkey-provider": "openai",
            "authorization": "Bearer sk-bench",
            "x-portkey-custom-host": f"http://127.0.0.1:{upstream}/{mode}/v1",
        }
        target.requests[mode] = (headers, chat_body("gpt-4o-mini", stream))
    return target


STARTERS = {"gateway": start_gateway, "floor": start_floor, "portkey": start_portkey}


def wrk_script(headers: dict[str, str], body: bytes) -> str:
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines.append(f"wrk.body = [[{body.decode()}]]")
    return "\n".join(lines) + "\n"


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    proc = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
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
    failed = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = (float(errors.group(1)) if errors else 0.0) + (
        sum(float(g) for g in failed.groups()) if failed else 0.0
    )
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process and its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def check_answers(target: Target) -> None:
    """One request per mode, so a target that answers errors is not timed."""
    import urllib.request

    for mode, (headers, body) in target.requests.items():
        req = urllib.request.Request(
            target.url, data=body, method="POST", headers={"content-type": "application/json", **headers}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                text = response.read().decode()
        except OSError as exc:
            sys.exit(f"{target.name} failed a {mode} request: {exc}")
        expected = "".join(WORDS) if mode == "json" else '"content":"?"'
        if expected not in text or (mode != "json" and not text.rstrip().endswith("data: [DONE]")):
            sys.exit(f"{target.name} answered {mode} unexpectedly: {text[:300]}")


@dataclass
class Sample:
    rps: float
    cpu_ms: float  # CPU ms per request
    p50: float
    p99: float
    errors: float


def measure(target: Target, mode: str, connections: int, seconds: float, tmp: Path) -> Sample:
    script = tmp / f"{target.name}-{mode}.lua"
    script.write_text(wrk_script(*target.requests[mode]))
    cpu0 = cpu_seconds(target.pid)
    out = run_wrk(target.url, script, connections, seconds)
    cpu = (cpu_seconds(target.pid) - cpu0) / max(out["requests"], 1) * 1000
    return Sample(out["rps"], cpu, out["p50"], out["p99"], out["errors"])


def median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3, help="length of one round (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per point; medians are shown (default 3)")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--targets", default="gateway,floor,portkey")
    parser.add_argument("--modes", default="json,sse,long")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (see bench/setup)")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: one for the target, one for nginx and wrk")
    names = args.targets.split(",")
    connections = [int(c) for c in args.connections.split(",")]
    modes = args.modes.split(",")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        upstream, nginx = start_upstream(tmp)
        targets: list[Target] = []
        try:
            for name in names:
                target = STARTERS[name](tmp, upstream)
                targets.append(target)
                pin(target.pid, TARGET_CORE)
            time.sleep(1.0)
            idle = {t.name: rss_mb(t.pid) for t in targets}
            for target in targets:
                check_answers(target)
            report(targets, modes, connections, args, tmp, idle)
        finally:
            for target in targets:
                target.stop()  # type: ignore[operator]
            nginx.terminate()
            nginx.wait(5)


def report(
    targets: list[Target], modes: list[str], connections: list[int], args, tmp: Path, idle: dict[str, float]
) -> None:
    print(
        f"gateway command: {' '.join(gateway_command())}; {os.cpu_count()} cores; targets on core "
        f"{TARGET_CORE}, nginx and wrk on core {LOAD_CORE}; {args.rounds} rounds of {args.seconds:g} s per point, "
        "targets in rotating order, medians"
    )
    print("idle RSS MB: " + ", ".join(f"{n} {v:.0f}" for n, v in idle.items()))
    print()
    results: dict[tuple[str, int, str], list[Sample]] = {}
    for mode in modes:
        for conns in connections:
            for r in range(args.rounds):
                order = targets[r % len(targets) :] + targets[: r % len(targets)]
                for target in order:
                    results.setdefault((mode, conns, target.name), []).append(
                        measure(target, mode, conns, args.seconds, tmp)
                    )
    label = {"json": "non-stream", "sse": f"stream {SHORT_CHUNKS} chunks", "long": f"stream {LONG_CHUNKS} chunks"}
    names = [t.name for t in targets]
    header = (
        f"{'mode':<22}{'conns':>6}"
        + "".join(f"{n + ' req/s':>15}" for n in names)
        + "".join(f"{n + ' CPU ms/req':>20}" for n in names)
        + f"{'p50 ms (gw)':>13}{'errors ' + '/'.join(n[:2] for n in names):>16}"
    )
    print(header)
    print("-" * len(header))
    for mode in modes:
        for conns in connections:
            row = f"{label[mode]:<22}{conns:>6}"
            row += "".join(f"{median(results[mode, conns, n], 'rps'):>15.0f}" for n in names)
            row += "".join(f"{median(results[mode, conns, n], 'cpu_ms'):>20.3f}" for n in names)
            first = results[mode, conns, names[0]]
            # per target (gw/fl/po): wrk counts non-2xx answers and socket errors
            errors = "/".join(f"{sum(s.errors for s in results[mode, conns, n]):.0f}" for n in names)
            row += f"{median(first, 'p50'):>13.2f}{errors:>16}"
            print(row)
    print()
    if "gateway" in names:
        print_ratios(results, modes, connections, names, label)
        if "sse" in modes and "long" in modes:
            print_per_chunk(results, connections, names)
        for mode in modes:
            if len(connections) > 1:
                low, high = min(connections), max(connections)
                ratio = median(results[mode, high, "gateway"], "rps") / median(results[mode, low, "gateway"], "rps")
                print(f"gateway {label[mode]}: {high} connections at {ratio:.2f}x the req/s of {low}")


def print_per_chunk(results, connections, names) -> None:
    print()
    print("CPU per chunk (us), from the CPU difference between the long and the short stream:")
    for conns in connections:
        parts = []
        for n in names:
            extra = median(results["long", conns, n], "cpu_ms") - median(results["sse", conns, n], "cpu_ms")
            parts.append(f"{n} {extra / (LONG_CHUNKS - SHORT_CHUNKS) * 1000:.1f}")
        print(f"  {conns} connections: " + ", ".join(parts))


def print_ratios(results, modes, connections, names, label) -> None:
    """req/s ratios (the goal), and CPU-per-request ratios: on a shared machine the CPU a
    request costs moves less than the req/s that other processes leave room for."""
    print("ratios: gateway req/s over the other's req/s; in brackets, the other's CPU per request over the gateway's")
    for mode in modes:
        for conns in connections:
            gw = median(results[mode, conns, "gateway"], "rps")
            gw_cpu = median(results[mode, conns, "gateway"], "cpu_ms")
            parts = []
            for other, goal in (("floor", "goal >= 50%"), ("portkey", "goal >= 3x")):
                if other not in names:
                    continue
                rps = gw / median(results[mode, conns, other], "rps")
                cpu = median(results[mode, conns, other], "cpu_ms") / gw_cpu
                shown = f"{rps:.0%}" if other == "floor" else f"{rps:.2f}x"
                parts.append(f"{other} {shown} [{cpu:.2f}] ({goal})")
            print(f"  {label[mode]:<22}{conns:>4} connections: " + ", ".join(parts))


if __name__ == "__main__":
    main()
