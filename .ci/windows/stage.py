"""The Windows stage of CI: the .exe built and tested under Wine.

    python3 .ci/windows/stage.py [--no-frozen] [--no-source] [-- PYTEST ARGS...]

1. the prefix and its two Windows interpreters (setup.py; cached per machine);
2. this checkout copied to C:\\src (Windows code sees only C:, see winenv.py);
3. `build/build.py` under C:\\py-build (runtime and build dependencies only) makes
   dist/ai-gateway-x86_64-pc-windows-msvc.exe and smoke-runs it; it is copied back into
   this checkout's dist/;
4. the black-box suite against that .exe (AI_GATEWAY_CMD), run by C:\\py-test;
5. the tests of the Windows paths against the source tree, run by C:\\py-test;
6. a table of the results (dist/windows-results.md): passed, failed, skipped for a
   limit of Wine (the reason starts with "Wine"), skipped otherwise, each skip's reason.

Both test runs use ANSI code page 936 (Wine takes it from LC_ALL=zh_CN.UTF-8), so piped
standard streams really are GBK. Exit code 1 if anything failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import setup  # noqa: E402
from winenv import BUILD_PY, ROOT, TEST_PY, cache_root, drive_c, locked, run_wine, stop_wineserver  # noqa: E402

TRIPLE = "x86_64-pc-windows-msvc"
EXE = f"ai-gateway-{TRIPLE}.exe"
#: what Windows code needs of the checkout
COPIED = [
    "app",
    "tests",
    "build/build.py",
    "spec",
    "pyproject.toml",
    "README.md",
    "tauri-sidecar.md",
    ".github",
    "tauri",
    "docs",
]
#: the Windows paths, run against the source tree (the frozen run covers the rest)
SOURCE_TESTS = [
    "tests/test_windows.py",
    "tests/test_stdio.py",
    "tests/test_lifecycle.py",
    "tests/test_crash_records.py",
    "tests/test_process.py",
]
#: ruff and mypy are Linux's gate (not installed on the Windows side); the browser
#: engines, the npm SDK tests, the Rust crate and the example app's page build drive
#: Linux-side tools (Chromium, Firefox, WebKitGTK, node, cargo) that the Linux passes run
FROZEN_TESTS = [
    "tests",
    "--ignore=tests/test_lint.py",
    "--ignore=tests/browser",
    "--ignore=tests/test_node_sdk.py",
    "--ignore=tests/test_supervisor_crate.py",
    "--ignore=tests/test_tauri_example.py",
]
CODE_PAGE_936 = {"LC_ALL": "zh_CN.UTF-8", "PYTHONUNBUFFERED": "1"}


def copy_checkout(home: Path) -> Path:
    src = drive_c(home) / "src"
    if src.is_symlink() or src.is_file():
        src.unlink()
    shutil.rmtree(src, ignore_errors=True)
    ignore = shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules", "target", "dist"
    )
    for name in COPIED:
        source, target = ROOT / name, src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    return src


def pytest(home: Path, name: str, args: list[str], extra_env: dict[str, str], timeout: float) -> Path:
    report = drive_c(home) / "results" / f"{name}.xml"
    report.parent.mkdir(exist_ok=True)
    report.unlink(missing_ok=True)
    argv = [
        f"C:\\{TEST_PY}\\python.exe",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        f"--junitxml=C:\\results\\{name}.xml",
        "-o",
        "junit_family=xunit1",
        *args,
    ]
    started = time.monotonic()
    code = run_wine(home, argv, timeout=timeout, extra_env={**CODE_PAGE_936, **extra_env}, cwd=drive_c(home) / "src")
    print(f"[windows] pytest {name}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
    if not report.exists():
        raise SystemExit(f"pytest ({name}) wrote no report (exit {code})")
    return report


#: skip reasons that name a limit of Wine (what only real Windows can show) start so
WINE_LIMIT = "Wine"


def results(report: Path) -> tuple[dict[str, Counter], list[tuple[str, str]], list[tuple[str, str]]]:
    """Per test file: passed / failed / skipped for a Wine limit / skipped otherwise; plus
    the skips and failures with their reason."""
    per_file: dict[str, Counter] = defaultdict(Counter)
    skipped, failed = [], []
    for case in ET.parse(report).getroot().iter("testcase"):
        file = (case.get("file") or case.get("classname", "?").replace(".", "/") + ".py").replace("\\", "/")
        test = f"{Path(file).name}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag == "skipped":
                why = (child.get("message") or "").removeprefix("Skipped: ")
                outcome = "wine" if why.startswith(WINE_LIMIT) else "skipped"
                skipped.append((test, why))
            elif child.tag in ("failure", "error"):
                outcome = "failed"
                failed.append((test, (child.get("message") or child.tag).splitlines()[0][:160]))
        per_file[Path(file).name][outcome] += 1
    return per_file, skipped, failed


def table(runs: list[tuple[str, Path]]) -> tuple[str, bool]:
    lines = [
        "| run | test file | passed | failed | skipped: Wine limit | skipped: other |",
        "|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    ok = True
    for label, report in runs:
        per_file, skipped, failed = results(report)
        totals: Counter = Counter()
        for file in sorted(per_file):
            counts = per_file[file]
            totals.update(counts)
            lines.append(
                f"| {label} | {file} | {counts['passed']} | {counts['failed']} | {counts['wine']} | "
                f"{counts['skipped']} |"
            )
        lines.append(
            f"| **{label}** | **all** | **{totals['passed']}** | **{totals['failed']}** | "
            f"**{totals['wine']}** | **{totals['skipped']}** |"
        )
        ok = ok and not failed
        notes += [f"- {label}: FAILED `{test}`: {why}" for test, why in failed]
        by_reason: dict[str, list[str]] = defaultdict(list)
        for test, why in skipped:
            by_reason[why].append(test)
        notes += [
            f"- {label}: skipped ({', '.join(f'`{t}`' for t in tests)}): {why}"
            for why, tests in sorted(by_reason.items())
        ]
    return "\n".join(lines + [""] + notes) + "\n", ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-frozen", action="store_true", help="skip the build and the frozen run")
    parser.add_argument("--no-source", action="store_true", help="skip the source run")
    parser.add_argument("--table-only", action="store_true", help="print the table of the last run's reports")
    parser.add_argument("pytest_args", nargs="*", help="replace the test selection of both runs")
    args = parser.parse_args()
    started = time.monotonic()
    if args.table_only:
        home = cache_root() / setup.cache_key()
        reports = [
            (label, drive_c(home) / "results" / f"{name}.xml")
            for label, name in (("frozen .exe", "frozen"), ("source", "source"))
        ]
        print(table([(label, report) for label, report in reports if report.exists()])[0])
        return 0
    with locked(cache_root()):
        home = setup.ensure()
        print(f"[windows] C:\\{BUILD_PY} holds: {setup.interpreter_report(home)}", flush=True)
        src = copy_checkout(home)
        runs: list[tuple[str, Path]] = []
        try:
            if not args.no_frozen:
                code = run_wine(
                    home,
                    [f"C:\\{BUILD_PY}\\python.exe", "C:\\src\\build\\build.py", "--target-triple", TRIPLE],
                    timeout=900,
                    cwd=src,
                )
                if code != 0:
                    raise SystemExit(f"build/build.py failed under Wine (exit {code})")
                (ROOT / "dist").mkdir(exist_ok=True)
                shutil.copy2(src / "dist" / EXE, ROOT / "dist" / EXE)
                print(f"[windows] dist/{EXE}: {(ROOT / 'dist' / EXE).stat().st_size / 1e6:.1f} MB", flush=True)
                runs.append(
                    (
                        "frozen .exe",
                        pytest(
                            home,
                            "frozen",
                            args.pytest_args or FROZEN_TESTS,
                            {"AI_GATEWAY_CMD": f"C:/src/dist/{EXE}"},
                            timeout=900,
                        ),
                    )
                )
            if not args.no_source:
                runs.append(("source", pytest(home, "source", args.pytest_args or SOURCE_TESTS, {}, timeout=600)))
        finally:
            stop_wineserver(home)
        text, ok = table(runs)
    (ROOT / "dist").mkdir(exist_ok=True)
    (ROOT / "dist" / "windows-results.md").write_text(text)
    print(f"\n[windows] results ({time.monotonic() - started:.0f} s in all), also in dist/windows-results.md:\n")
    print(text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
