"""A run folder belongs to one run: claimed before anything is written into it.

A folder that holds a finished run (its record, ``metrics.json`` or ``untrained.json``) is never
written by another run unless that run says ``overwrite=true``; a folder a live process is writing
is never written at all. The claim is an exclusive ``flock`` on ``.bridgeeval.lock`` in the folder,
held until the run ends: the kernel releases it when the process dies however it dies, so a killed
run's folder can be taken over (a requeued Slurm job reruns in its own folder) and a live one never.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import socket
from pathlib import Path

from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import writable_folder_error

LOCK_NAME = ".bridgeeval.lock"
# A finished run's record, written last by each task (train.py, untrained.py).
FINISHED_MARKERS = ("metrics.json", "untrained.json")
# What a run leaves that a reader pairs with its record; a claim removes a previous (replaced or dead)
# run's, so that the new run's files never stand beside them (e.g. fold checkpoints of another cv.fold).
RUN_RECORDS = ("metrics.json", "untrained.json", "items.npz", "mapped.npy", "mapped_splits.npz", "history.csv", "error.json", "checkpoints",
               "table2.md", "table2.csv", "table2.tex", "structure.md", "structure.csv", "structure.json")


class RunFolderClaim:
    """The held lock of one folder; :meth:`release` (or the process's end) frees it."""

    def __init__(self, folder: Path, handle: int):
        self.folder, self._handle = folder, handle

    def release(self) -> None:
        if self._handle >= 0:
            os.close(self._handle)  # closing drops the flock; the file stays (unlinking it races)
            self._handle = -1


def claim_run_folder(folder: str | os.PathLike, overwrite: bool = False, key: str = "hydra.run.dir") -> RunFolderClaim:
    """The folder's claim for this process, or one line saying whose it is and the way out
    (``key``: the setting that chose the folder)."""
    folder = Path(folder)
    err = writable_folder_error(folder)
    if err is not None:
        raise BridgeEvalError(f"run folder {folder}: cannot write there ({err.strerror or err}); "
                              f"choose another with {key}=...")
    handle = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(handle)
        os.close(handle)
        raise BridgeEvalError(f"run folder {folder} is being written by another run ({holder}); "
                              f"wait for it, or write this run elsewhere (a new {key})") from None
    finished = [name for name in FINISHED_MARKERS if (folder / name).exists()]
    if finished and not overwrite:
        os.close(handle)
        raise BridgeEvalError(f"run folder {folder} holds a finished run ({finished[0]}); write this run "
                              f"elsewhere (a new {key}), or replace that run with overwrite=true")
    # What is left is a replaced run's (overwrite=true) or a dead one's (failed, killed): its records
    # and checkpoints never stand beside this run's (a killed 5-fold run's fold0.ckpt next to cv.fold=1's).
    _remove_records(folder)
    _write_holder(handle)
    return RunFolderClaim(folder, handle)


def _remove_records(folder: Path) -> None:
    for name in RUN_RECORDS:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _write_holder(handle: int) -> None:
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)


def _read_holder(handle: int) -> str:
    text = os.pread(handle, 200, 0).decode(errors="replace").strip()
    return text or "a process that has not said which"
