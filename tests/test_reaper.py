"""The fixtures' servers never outlive a killed test run (tests/reaper.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# A stand-in for a fixture's process: starts a "server" in its own session (as the Slurm daemons
# are), a folder for it, and the reaper; prints the server's pid; then waits to be killed.
PARENT = f"""
import os, subprocess, sys, tempfile, time
sys.path.insert(0, {str(HERE)!r})
from reaper import start_reaper
folder = tempfile.mkdtemp(prefix="reaper-test-")
server = subprocess.Popen(["sleep", "300"], start_new_session=True)
start_reaper(groups=[server.pid], remove=[folder])
print(server.pid, folder, flush=True)
if sys.argv[1] == "stop":
    os.killpg(server.pid, 15); server.wait()
time.sleep(300)
"""


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie (exited, its parent gone before reaping it) counts as gone.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_parent_takes_its_servers_and_folders_with_it(signum):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, "run"], stdout=subprocess.PIPE, text=True)
    pid, folder = parent.stdout.readline().split()
    assert Path(folder).is_dir()
    parent.send_signal(signum)  # as `timeout` ends a test run, or worse
    parent.wait()
    assert _gone(int(pid), timeout=15), "the server outlived its test run"
    deadline = time.time() + 5
    while Path(folder).exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not Path(folder).exists()


def test_a_reaper_whose_servers_were_stopped_exits_by_itself():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, "stop"], stdout=subprocess.PIPE, text=True)
    try:
        pid, folder = parent.stdout.readline().split()
        assert _gone(int(pid), timeout=5)
        deadline = time.time() + 5
        while time.time() < deadline and _reapers_of(folder):
            time.sleep(0.2)
        assert not _reapers_of(folder)
        assert Path(folder).is_dir()  # a normal stop is the fixture's: nothing removed behind its back
    finally:
        parent.kill()
        parent.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _reapers_of(folder: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"reaper.py.*{folder}"], capture_output=True, text=True).stdout
    return out.split()
