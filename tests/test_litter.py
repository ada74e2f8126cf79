"""No temp litter: a onefile run removes the extraction dirs that killed runs of the same
executable left behind, and never one in use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import app.runtime.litter as litter
from app.runtime.litter import MARKER, remove_marker_last, stale_dirs, sweep, sweep_until_settled
from tests.gateway import gateway_command, pid_gone

EXE = "/opt/app/ai-gateway"


def extraction_dir(parent: Path, name: str, executable: str | None = EXE, pids=(111,)) -> Path:
    path = parent / name
    (path / "lib").mkdir(parents=True)
    if executable is not None:
        (path / MARKER).write_text(json.dumps({"executable": executable, "pids": list(pids)}))
    return path


def test_only_dead_runs_of_the_same_executable_are_stale(tmp_path):
    own = extraction_dir(tmp_path, "_MEIown", pids=(1,))
    dead = extraction_dir(tmp_path, "_MEIdead", pids=(111, 112))
    extraction_dir(tmp_path, "_MEIalive", pids=(111, 222))  # its gateway still runs
    extraction_dir(tmp_path, "_MEIother", executable="/opt/other/app")  # another program
    extraction_dir(tmp_path, "_MEInomark", executable=None)  # killed before its mark, or not ours
    extraction_dir(tmp_path, "_MEImapped")  # a process maps a file from it
    extraction_dir(tmp_path, "notmei")
    (tmp_path / "_MEIfile").write_text("x")
    stale = stale_dirs(tmp_path, own, EXE, alive=lambda pid: pid == 222, in_use={"_MEImapped"})
    assert stale == [dead]


def test_a_broken_marker_keeps_the_dir(tmp_path):
    own = extraction_dir(tmp_path, "_MEIown")
    broken = tmp_path / "_MEIbroken"
    broken.mkdir()
    (broken / MARKER).write_text("{not json")
    odd = extraction_dir(tmp_path, "_MEIodd", pids=("111",))
    assert stale_dirs(tmp_path, own, EXE, alive=lambda pid: False, in_use=set()) == []
    assert odd.exists()


def test_a_run_still_winding_down_is_removed_once_it_has_ended(tmp_path):
    # a killed bootloader's gateway lives on for a moment (it notices, then drains): a
    # sweep at the next start sees it alive, and a later look must still remove its dir
    winding_down = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        own = extraction_dir(tmp_path, "_MEIown", executable=sys.executable, pids=(os.getpid(),))
        left = extraction_dir(tmp_path, "_MEIleft", executable=sys.executable, pids=(winding_down.pid,))
        started = time.monotonic()
        ended = subprocess.Popen(
            [sys.executable, "-c", f"import os,time; time.sleep(0.4); os.kill({winding_down.pid}, 9)"]
        )
        removed = sweep_until_settled(own, sys.executable, pauses=[0.2] * 25)
        ended.wait(5)
        assert removed == 1 and not left.exists() and own.exists()
        assert time.monotonic() - started < 5
    finally:
        winding_down.kill()
        winding_down.wait(5)


def test_the_looks_end_while_a_run_keeps_running(tmp_path):
    own = extraction_dir(tmp_path, "_MEIown", executable=sys.executable, pids=(os.getpid(),))
    running = extraction_dir(tmp_path, "_MEIrunning", executable=sys.executable, pids=(os.getpid(),))
    assert sweep_until_settled(own, sys.executable, pauses=[0.05] * 3) == 0
    assert running.exists()


def test_a_sweep_killed_half_way_leaves_a_dir_the_next_sweep_still_removes(tmp_path):
    # the sweeping run can be killed itself while it removes a dead run's dir: what it
    # leaves must still carry the marker, or no later run dares to touch it
    own = extraction_dir(tmp_path, "_MEIown", executable=sys.executable, pids=(os.getpid(),))
    dead = extraction_dir(tmp_path, "_MEIdead", executable=sys.executable, pids=(2**22 + 7,))
    files = 400
    for i in range(files):
        (dead / "lib" / f"m{i:03}.so").write_bytes(b"x")
        (dead / f"top{i:03}.py").write_bytes(b"x")
    slow_disk = (
        "import os, sys, time; from pathlib import Path; unlink = os.unlink\n"
        "def slow(*a, **k): time.sleep(0.002); return unlink(*a, **k)\n"
        "os.unlink = slow\n"
        "from app.runtime.litter import remove_marker_last\n"
        "remove_marker_last(Path(sys.argv[1]))\n"
    )
    remover = subprocess.Popen([sys.executable, "-c", slow_disk, str(dead)], cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 20
        while sum(1 for _ in dead.rglob("*.*")) > files // 10 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        remover.kill()
        remover.wait(5)
    assert dead.exists() and sum(1 for _ in dead.rglob("*.*")) > 1, "the removal ended before the kill"
    assert (dead / MARKER).exists()
    removed, left = sweep(own, sys.executable)
    assert removed == [dead] and left == 0 and not dead.exists() and own.exists()


def test_two_sweeps_removing_the_same_dir_at_once_do_not_fail(tmp_path, monkeypatch):
    dead = extraction_dir(tmp_path, "_MEIdead", pids=(2**22 + 7,))
    real_rmtree = litter.shutil.rmtree

    def the_other_sweep_got_there_first(path, **kwargs):
        real_rmtree(path)
        real_rmtree(path, **kwargs)  # what this sweep then meets: all gone

    monkeypatch.setattr(litter.shutil, "rmtree", the_other_sweep_got_there_first)
    remove_marker_last(dead)
    assert not dead.exists()


def onefile_command() -> list[str] | None:
    command = gateway_command()
    if not os.environ.get("AI_GATEWAY_CMD") or len(command) != 1 or not Path(command[0]).is_file():
        return None
    return command


@pytest.mark.skipif(onefile_command() is None, reason="needs a onefile build in AI_GATEWAY_CMD (.ci/run's second pass)")
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of the bootloader; Windows runs this in the app workflow")
def test_killed_bootloaders_leave_nothing_after_one_more_start(tmp_path):
    command = onefile_command()
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "TMP": str(temp), "TEMP": str(temp)}

    def start() -> tuple[subprocess.Popen, dict]:
        proc = subprocess.Popen(
            command + ["--port", "0", "--watch-stdin", "--log-dir", str(tmp_path / "logs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        ready = orjson.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["pid"] != proc.pid, "not a onefile build"
        return proc, ready

    keeper, _ = start()  # a run in use the whole time: its dir must survive every sweep
    kills = 4
    for _ in range(kills):
        proc, ready = start()
        proc.send_signal(signal.SIGKILL)  # the bootloader: what child.kill() and Task Manager do
        proc.wait(5)
        assert pid_gone(ready["pid"], 5), "the gateway outlived its bootloader"
        proc.stdin.close()
        proc.stdout.close()
    # each start tidies what the kills before it left; the last kill's dir is still there
    leftovers = sorted(p.name for p in temp.glob("_MEI*"))
    assert len(leftovers) >= 2, f"the kills left nothing to tidy ({leftovers}): the test would show nothing"

    proc, ready = start()
    try:
        deadline = time.monotonic() + 10
        while len(list(temp.glob("_MEI*"))) > 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(list(temp.glob("_MEI*"))) == 2, sorted(p.name for p in temp.glob("_MEI*"))  # keeper's and ours
    finally:
        proc.stdin.close()
        assert proc.wait(15) == 0
        keeper.stdin.close()
        assert keeper.wait(15) == 0  # it ran from its dir the whole time
    deadline = time.monotonic() + 5
    while list(temp.glob("_MEI*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(temp.glob("_MEI*")) == []
