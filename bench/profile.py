"""Where the gateway's CPU goes under load: py-spy samples, grouped by component.

Starts nginx (the upstream) and the gateway pinned as bench/bench.py does, drives one
mode with wrk, records the gateway with py-spy, and prints each component's share of the
samples and of the CPU per request. A sample counts for the innermost frame that belongs to
a known component (C calls such as orjson's count for the Python frame that made them).

    python bench/profile.py [--mode json|sse|long] [--connections 16] [--seconds 8] [--target gateway|floor]

Needs py-spy (pip install py-spy), nginx and wrk; py-spy needs ptrace rights (root, or
kernel.yama.ptrace_scope = 0).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import TARGET_CORE, cpu_seconds, pin, run_wrk, start_floor, start_gateway, start_upstream, wrk_script

#: (component, path fragments), innermost match wins; order decides between overlapping ones
COMPONENTS = [
    ("upstream HTTP/1.1 parser (h11)", ("h11/",)),
    ("upstream pool (httpcore pool)", ("httpcore/_async/connection_pool", "httpcore/_synchronization")),
    ("upstream connection (httpcore, anyio)", ("httpcore/", "anyio/", "sniffio/")),
    ("upstream client (aiohttp)", ("aiohttp/", "httpx_aiohttp/", "multidict/", "yarl/")),
    ("upstream client (httpx)", ("httpx/",)),
    ("upstream SSE parsing (httpx-sse)", ("httpx_sse/",)),
    (
        "logging (loguru, request line)",
        ("loguru/", "app/runtime/logs", "app/server/accounting", "app/text.py", "logging/"),
    ),
    ("routing (router, table, policy)", ("app/routing/",)),
    ("relay (stream to client)", ("app/server/relay", "app/sse.py")),
    ("provider (request shaping, JSON)", ("app/providers/",)),
    ("gateway server (guard, routes, bodies)", ("app/",)),
    (
        "Sanic HTTP (request parsing, response writing)",
        ("sanic/http/", "sanic/server/", "sanic/response/", "httptools/"),
    ),
    ("Sanic signals (per-request lifecycle events)", ("sanic/signals", "sanic_routing/")),
    ("Sanic (app, request, handlers)", ("sanic/",)),
    ("event loop and asyncio (uvloop native time shows here)", ("asyncio/", "uvloop/", "contextlib", "uuid")),
]


def component(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        location = frame.rpartition(" (")[2]  # "function (package/module.py:line)"
        for name, fragments in COMPONENTS:
            if location.startswith(fragments):
                return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="json", choices=["json", "sse", "long"])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--target", default="gateway", choices=["gateway", "floor"], help="the floor: to see what its CPU goes to"
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "py-spy"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            sys.exit(f"{tool} is not installed")
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        upstream, nginx = start_upstream(tmp)
        try:
            gw = (start_gateway if args.target == "gateway" else start_floor)(tmp, upstream)
            try:
                pin(gw.pid, TARGET_CORE)
                script = tmp / "load.lua"
                script.write_text(wrk_script(*gw.requests[args.mode]))
                run_wrk(gw.url, script, args.connections, 2)  # warm up
                raw = Path(tempfile.gettempdir()) / "ai-gateway-profile-stacks.txt"
                spy = subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--pid",
                        str(gw.pid),
                        "--rate",
                        str(args.rate),
                        "--duration",
                        str(round(args.seconds)),
                        "--format",
                        "raw",
                        "--output",
                        str(raw),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # noqa: SIM115
                time.sleep(0.5)
                cpu0 = cpu_seconds(gw.pid)
                out = run_wrk(gw.url, script, args.connections, args.seconds - 1)
                cpu_ms = (cpu_seconds(gw.pid) - cpu0) / max(out["requests"], 1) * 1000
                spy.wait(args.seconds + 30)
                totals: collections.Counter[str] = collections.Counter()
                for line in raw.read_text().splitlines():
                    stack, _, count = line.rpartition(" ")
                    if stack:
                        totals[component(stack)] += int(count)
            finally:
                gw.stop()  # type: ignore[operator]
        finally:
            nginx.terminate()
            nginx.wait(5)
    samples = sum(totals.values()) or 1
    print(
        f"mode {args.mode}, {args.connections} connections: {out['rps']:.0f} req/s, "
        f"{cpu_ms:.3f} CPU ms per request, {samples} samples"
    )
    print(f"{'component':<50}{'share':>8}{'CPU us/req':>12}")
    for name, count in totals.most_common():
        print(f"{name:<50}{count / samples:>8.1%}{count / samples * cpu_ms * 1000:>12.0f}")


if __name__ == "__main__":
    main()
