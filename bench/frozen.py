"""The frozen sidecar as an app sees it: file size, spawn-to-ready time over several cold
starts, and idle memory of the whole process tree (bootloader + gateway).

    python bench/frozen.py [--binary dist/ai-gateway-<triple>] [--runs 7]

Prints numbers; asserts nothing. Linux (reads /proc).
"""

from __future__ import annotations

import argparse
import glob
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split between the processes that share them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start(binary: Path, log_dir: str) -> tuple[subprocess.Popen, dict, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary), "--port", "0", "--watch-stdin", "--log-dir", log_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    ready = orjson.loads(proc.stdout.readline())
    return proc, ready, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    binary = args.binary or Path(sorted(glob.glob(str(ROOT / "dist" / "ai-gateway-*")))[0])
    print(f"binary: {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}")
    print(f"size: {binary.stat().st_size / 1e6:.1f} MB")

    with tempfile.TemporaryDirectory() as log_dir:
        times = []
        for _ in range(args.runs):
            proc, ready, elapsed = start(binary, log_dir)
            times.append(elapsed)
            proc.stdin.close()
            proc.wait(20)
        print(
            f"spawn to ready: median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {len(times)} runs)"
        )

        proc, ready, _ = start(binary, log_dir)
        time.sleep(2)
        tree = [proc.pid] + children(proc.pid)
        rss = {pid: rss_mb(pid) for pid in tree}
        pss = {pid: pss_mb(pid) for pid in tree}
        for pid in tree:
            role = "gateway" if pid == ready["pid"] else "bootloader"
            print(f"idle {role:<10} pid {pid}: RSS {rss[pid]:.1f} MB, PSS {pss[pid]:.1f} MB")
        print(f"idle tree: RSS {sum(rss.values()):.1f} MB, PSS {sum(pss.values()):.1f} MB")
        proc.stdin.close()
        proc.wait(20)
    print("\nPeers (issue text, same machine class): Portkey ready in 0.8 s at 72 MB idle; LiteLLM 13 s and 330 MB.")


if __name__ == "__main__":
    sys.exit(main())
