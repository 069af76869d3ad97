"""Servers a test fixture starts never outlive the test run, however it ends.

A fixture's own teardown stops its servers when pytest ends normally; a run killed by ``timeout``
(SIGTERM), a worker killed outright, or a Ctrl-C mid-teardown left a Slurm cluster's ten daemons
(and PostgreSQL) running for hours, holding their ports and folders. :func:`start_reaper` starts a
small watcher in its own session: when the process that started the servers (or the pytest process
above it) is gone, it stops them (SIGTERM, then SIGKILL after 10 s) and removes their folders; when
the servers are stopped by their fixture, it exits by itself.

    python tests/reaper.py SPEC   # what start_reaper runs: SPEC is its JSON
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 10.0


def start_reaper(groups=(), pidfiles=(), remove=()) -> subprocess.Popen:
    """Watches this process (and a pytest parent, under xdist); stops the process ``groups``, the
    pids written in ``pidfiles`` (a daemon that forked, as pg_ctl's postmaster) and removes
    ``remove`` once either is gone."""
    watch = [os.getpid()] + ([os.getppid()] if _is_pytest(os.getppid()) else [])
    spec = {"watch": watch, "groups": list(groups), "pidfiles": [str(p) for p in pidfiles],
            "remove": [str(p) for p in remove]}
    return subprocess.Popen([sys.executable, __file__, json.dumps(spec)], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _is_pytest(pid: int) -> bool:
    try:
        return b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _exists(probe) -> bool:
    """Whether signal 0 reaches the process or group (a permission error means it exists)."""
    try:
        probe()
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(pid: int) -> bool:
    return _exists(lambda: os.kill(pid, 0))


def _group_alive(pgid: int) -> bool:
    return _exists(lambda: os.killpg(pgid, 0))


def _pidfile_pid(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _targets(spec: dict) -> tuple[list[int], list[int]]:
    groups = [g for g in spec["groups"] if _group_alive(g)]
    pids = [p for p in map(_pidfile_pid, spec["pidfiles"]) if p is not None and _alive(p)]
    return groups, pids


def _signal(groups: list[int], pids: list[int], signum: int) -> None:
    for g in groups:
        try:
            os.killpg(g, signum)
        except ProcessLookupError:
            pass
    for p in pids:
        try:
            os.kill(p, signum)
        except ProcessLookupError:
            pass


def reap(spec: dict) -> None:
    groups, pids = _targets(spec)
    _signal(groups, pids, signal.SIGTERM)
    deadline = time.time() + GRACE_S
    while time.time() < deadline and any(_targets(spec)):
        time.sleep(0.2)
    _signal(*_targets(spec), signal.SIGKILL)
    for path in spec["remove"]:
        shutil.rmtree(path, ignore_errors=True)


def watch(spec: dict) -> None:
    while True:
        if not all(_alive(p) for p in spec["watch"]):
            reap(spec)
            return
        if not any(_targets(spec)):  # stopped by their fixture: nothing left to watch
            return
        time.sleep(POLL_S)


if __name__ == "__main__":
    watch(json.loads(sys.argv[1]))
