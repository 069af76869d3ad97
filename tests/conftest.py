"""Shared fixtures: the real data in ../shared/data (read in place), brute-force references."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

# The jobs the tests start (train.py runs, sweeps, Slurm jobs) run one torch thread each: two
# xdist workers each starting jobs of two threads put 4-8 spinning OpenMP threads on CI's 2 cores,
# and a sweep test took 158 s instead of 28. The test processes keep one thread per core (set back
# below), so the parallel kernels stay covered. A user's OMP_NUM_THREADS wins.
_JOBS_ONE_THREAD = "OMP_NUM_THREADS" not in os.environ
if _JOBS_ONE_THREAD:
    os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from reaper import start_reaper  # noqa: E402

if _JOBS_ONE_THREAD:  # the cores this process may run on (a CI runner's affinity, not the host's)
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

from bridgeeval.config.resolvers import register_resolvers  # noqa: E402

register_resolvers()  # the tests compose configs in-process (an entry point like train.py)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BRIDGEEVAL_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared data file {path} is not available")
    return path


@pytest.fixture(scope="session")
def iapr_paths():
    return shared_file("iaprtc", "TS_lang_biGRU.csv"), shared_file("iaprtc", "TS_vis_vgg128.csv")


def brute_knn(x, k: int, metric: str = "cosine", include_self: bool = False) -> np.ndarray:
    """float64 full distance matrix, sorted by (distance, index): the reference for knn_indices."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        dist = 0.5 * ((xn[:, None, :] - xn[None, :, :]) ** 2).sum(-1)
    else:
        dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, 0.0 if include_self else np.inf)
    order = np.arange(len(x))
    return np.stack([np.lexsort((order, row))[:k] for row in dist])


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a loopback port in a temporary data folder."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins and not shutil.which("initdb"):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    bindir = Path(bins[-1]) if bins else Path(shutil.which("initdb")).parent
    # Directly under /tmp: the server runs as the postgres user, who cannot enter pytest's root-only folders.
    data = Path(tempfile.mkdtemp(prefix="bridgeeval-pg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(data, "postgres")
    subprocess.run([*as_user, bindir / "initdb", "-D", data / "db", "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, bindir / "pg_ctl", "-D", data / "db", "-o", opts, "-l", data / "log", "-w", "start"],
                   check=True, capture_output=True)
    # However the test run ends, the server goes with it (pg_ctl's postmaster is not our child).
    start_reaper(pidfiles=[data / "db" / "postmaster.pid"], remove=[data])
    try:
        subprocess.run([bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, bindir / "pg_ctl", "-D", data / "db", "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


# Modules whose tests share an expensive setup (one Slurm cluster; a module's real runs): under
# pytest-xdist (`-n 2 --dist loadgroup`, pyproject's default) each runs on one worker, so that the
# setup happens once.
SHARED_SETUP_MODULES = ("test_slurm_sweeps.py", "test_slurm_faults.py", "test_report_pooling.py", "test_reports.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1]
        if module in SHARED_SETUP_MODULES:
            item.add_marker(pytest.mark.xdist_group(module))
