"""Soak: mixed traffic for a bounded time, with client disconnects and upstream faults,
then a check that nothing grew and that every request reached the log.

    python bench/soak.py [--seconds 60] [--concurrency 16,64] [--disconnects 0.3] [--faults 0.1]

Prints a table; asserts nothing (tests/hostile/test_soak.py runs a short one and checks;
bench/soak.py is the command line).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.gateway import GatewayProcess, write_config  # noqa: E402
from tests.support import openai_provider  # noqa: E402
from tests.upstream import Upstream  # noqa: E402

NORMAL = [("up/text", True), ("up/text", False), ("up/tools", True), ("echo", True), ("echo", False)]
# what a client leaves: every path, so that the disconnect lands at a random point of it
LEFT = [
    ("up/text", True),
    ("up/text", False),
    ("up/slow-drip", True),
    ("up/long-stream", True),
    ("up/slow-json", False),
    ("up/hang-before-headers", True),
    ("echo", True),
]
FAULTS = [
    ("up/error-500", False),
    ("up/reset-mid-stream", True),
    ("up/no-done", True),
    ("up/malformed", True),
    ("up/rate-limit", False),
    ("dead-model", True),
    ("up/reset-before-headers", False),
]


@dataclass
class Report:
    concurrency: int
    seconds: float
    outcomes: Counter = field(default_factory=Counter)
    completed_ids: list[str] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    missing_from_log: int = 0

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())


def config_text(upstream: Upstream, dead_port: int) -> str:
    return f"""
[timeouts]
first_byte = 5
idle = 5
heartbeat = 1

[retry]
attempts = 1

[providers.echo]
type = "echo"

{openai_provider("up", upstream.base_url)}
[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
models = ["dead-model"]
"""


def snapshot(gw: GatewayProcess, upstream: Upstream) -> dict:
    stats = httpx.get(gw.url + "/admin/stats", timeout=10).json()
    log = gw.log_text()
    return {
        "open fds": stats["open_fds"],
        "fds besides upstream": (stats["open_fds"] - upstream.open_connections) if stats["open_fds"] else None,
        "asyncio tasks": stats["asyncio_tasks"],
        "requests in flight": stats["inflight_requests"] - 1,  # not counting this one
        "upstream requests open": upstream.busy_connections,
        "upstream connections": upstream.open_connections,
        "RSS MB": stats["rss_mb"],
        "log request lines": log.count(" | request id="),
    }


async def one_request(
    client: httpx.AsyncClient, rng: random.Random, report: Report, disconnects: float, faults: float
) -> None:
    leaving = rng.random() < disconnects
    if leaving:
        model, stream = rng.choice(LEFT)
    else:
        model, stream = rng.choice(FAULTS if rng.random() < faults / (1 - disconnects) else NORMAL)
    request_id = "soak-" + uuid.uuid4().hex
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "soak test words"}]}

    async def call() -> str:
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"x-request-id": request_id}
        ) as response:
            text = (await response.aread()).decode("utf-8", "replace")
            if response.status_code != 200:
                return f"status {response.status_code}"
            if stream and "data: [DONE]" not in text:
                return "in-band error"
            return "ok"

    task = asyncio.ensure_future(call())
    if leaving:
        await asyncio.sleep(rng.random() * 0.3)
        if not task.done():
            task.cancel()
    try:
        outcome = await task
        report.completed_ids.append(request_id)
    except asyncio.CancelledError:
        outcome = "client left"
    except httpx.HTTPError as exc:
        outcome = f"client error {type(exc).__name__}"
    report.outcomes[outcome] += 1


async def drive(url: str, concurrency: int, seconds: float, disconnects: float, faults: float, seed: int) -> Report:
    report = Report(concurrency, seconds)
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(n: int) -> None:
            local = random.Random(rng.random())
            while time.monotonic() < deadline:
                await one_request(client, local, report, disconnects, faults)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return report


def settle(gw: GatewayProcess, upstream: Upstream, before: dict | None = None, timeout: float = 15) -> dict:
    """The counts once the traffic is over: no request in flight, no upstream request open
    and, given the counts from before, no more tasks than then (a task finishing its last
    write, a ping or a cleanup, a moment after its request, is not a leak; one that is
    still there after `timeout` is)."""
    deadline = time.monotonic() + timeout
    while True:
        snap = snapshot(gw, upstream)
        quiet = snap["requests in flight"] <= 0 and snap["upstream requests open"] == 0
        if before is not None:
            quiet = quiet and snap["asyncio tasks"] <= before["asyncio tasks"]
        if quiet or time.monotonic() > deadline:
            return snap
        time.sleep(0.2)


def run_soak(
    seconds: float, levels: list[int], disconnects: float = 0.3, faults: float = 0.1, seed: int = 7
) -> list[Report]:
    from tests.conftest import free_port

    reports = []
    upstream = Upstream().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), config_text(upstream, free_port()))
            with GatewayProcess(["--port", "0", "--config", str(config)], tmp=Path(tmp)) as gw:
                asyncio.run(drive(gw.url, 4, 1.0, 0.0, 0.0, seed))  # warm up: pools, caches, imports
                for level in levels:
                    before = settle(gw, upstream)
                    report = asyncio.run(drive(gw.url, level, seconds, disconnects, faults, seed + level))
                    report.before, report.after = before, settle(gw, upstream, before)
                    time.sleep(1.0)  # request lines reach the file in half-second batches
                    log = gw.log_text()
                    report.missing_from_log = sum(f"id={rid} " not in log for rid in report.completed_ids)
                    reports.append(report)
    finally:
        upstream.stop()
    return reports


def print_reports(reports: list[Report]) -> None:
    for r in reports:
        print(
            f"\n== concurrency {r.concurrency}, {r.seconds:.0f} s: {r.requests} requests "
            f"({r.requests / r.seconds:.0f}/s)"
        )
        for outcome, count in sorted(r.outcomes.items(), key=lambda kv: -kv[1]):
            print(f"   {outcome:<28}{count:>8}")
        print(f"   completed requests missing from the log: {r.missing_from_log} of {len(r.completed_ids)}")
        print(f"   {'':<26}{'before':>10}{'after':>10}")
        for key in r.before:
            print(f"   {key:<26}{str(r.before[key]):>10}{str(r.after[key]):>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="per concurrency level")
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--disconnects", type=float, default=0.3)
    parser.add_argument("--faults", type=float, default=0.1)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    print_reports(run_soak(args.seconds, levels, args.disconnects, args.faults))


if __name__ == "__main__":
    main()
