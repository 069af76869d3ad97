"""Helpers of the sweep tests: real ``train.py`` sweeps on the built-in set, shrunk to seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
FAST = ["trainer.max_epochs=1", "cv.folds=2", "trainer.enable_progress_bar=false", "logger=none", "callbacks=none"]


def grid_params(lr="0.01,0.001", hidden="64,128", dropout="0.0") -> str:
    return (
        f'hydra.sweeper.params={{optimizer.lr:"choice({lr})",mapper.hidden_units:"choice({hidden})",'
        f'mapper.dropout:"choice({dropout})"}}'
    )


def sweep_cmd(tmp: Path, *extra: str, search: str = "paper_grid") -> list[str]:
    return [sys.executable, "train.py", f"hparams_search={search}", f"paths.log_dir={tmp}", *FAST, *extra]


def run_sweep(tmp: Path, *extra: str, search: str = "paper_grid", check: bool = True):
    proc = subprocess.run(sweep_cmd(tmp, *extra, search=search), cwd=REPO, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def study_of(url: str, name: str = "s") -> optuna.Study:
    from bridgeeval.sweeps.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def completed_points(study: optuna.Study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.get_trials(states=(TrialState.COMPLETE,))]


def chattr_works(tmp: Path) -> bool:
    """Whether ``chattr +i`` (a file unwritable even for root) works on this file system."""
    probe = tmp / "probe"
    probe.write_text("")
    ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
    return ok
