"""Helpers of the Slurm test modules: the launcher settings, a module's cluster, waiting, drivers."""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from slurm_cluster import SlurmCluster, missing_binaries
from sweep_helpers import REPO, study_of, sweep_cmd

# Small jobs that fit the test node (2 CPUs, 4 GB), followed closely. Learning rates that train:
# with lr=0.01 the built-in set's map collapses and the exact k-NN of the collapsed outputs is slow.
LR = "0.001,0.0001"
LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.poll_interval=1",
    "hydra.launcher.result_grace=5",
]


def running_cluster():
    """A module's cluster (use as a module-scoped fixture); skipped, or failed in CI, without Slurm."""
    missing = missing_binaries()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"Slurm is not installed ({', '.join(missing)}); .ci/run installs slurm-wlm")
        pytest.skip(
            f"Slurm binaries missing: {', '.join(missing)} (apt-get install slurm-wlm slurmdbd munge mariadb-server)"
        )
    with SlurmCluster() as running:
        yield running


def wait_for(condition, timeout: float = 240, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def training_trials(url: str, name: str = "s") -> list:
    """RUNNING trials whose job has reported at least one epoch."""
    try:
        running = study_of(url, name).get_trials(states=(TrialState.RUNNING,))
    except (KeyError, ValueError, OSError):
        return []
    return [t for t in running if t.intermediate_values]


def driver(tmp: Path, cluster: SlurmCluster, *args: str, accounting: bool = True) -> subprocess.Popen:
    return subprocess.Popen(
        sweep_cmd(tmp, *LAUNCHER, *args),
        cwd=REPO,
        env=cluster.client_env(accounting),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("bridgeeval:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]




def running(url: str) -> list:
    try:
        return study_of(url).get_trials(states=(TrialState.RUNNING,))
    except (KeyError, ValueError, OSError):
        return []


def job_span(cluster: SlurmCluster, job: str) -> tuple[float, float]:
    """A job's start and end, in seconds since the epoch, from accounting (once it has the end)."""

    def span():
        line = cluster.run("sacct", "-X", "-n", "-P", "-o", "Start,End", "-j", job).split()
        return line[0] if line and "Unknown" not in line[0] else None

    start, end = (datetime.datetime.fromisoformat(v).timestamp() for v in wait_for(span, 60, "accounting").split("|"))
    return start, end
