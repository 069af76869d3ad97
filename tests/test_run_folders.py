"""A run folder belongs to one run: a finished or live run's folder is never written by another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridgeeval.errors import BridgeEvalError
from bridgeeval.runfolder import LOCK_NAME, claim_run_folder

REPO = Path(__file__).resolve().parents[1]
TINY = ["cv.fold=1", "trainer.max_epochs=1", "logger=none", "trainer.enable_progress_bar=false"]


def _train(folder, *overrides, wait=True):
    cmd = [sys.executable, "train.py", *TINY, f"hydra.run.dir={folder}", *overrides]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_live_claim_refuses_a_second_and_a_dead_ones_folder_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from bridgeeval.runfolder import claim_run_folder; "
        f"claim_run_folder({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BridgeEvalError, match=rf"run folder {tmp_path} is being written by another run "
                                                  rf"\(pid {holder.pid} on "):
            claim_run_folder(tmp_path)
    finally:
        holder.kill()  # SIGKILL: no cleanup ran, the lock file stays
        holder.wait()
    (tmp_path / "error.json").write_text("{}")  # what a failed run leaves
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "fold0.ckpt").write_text("a killed run's fold")
    (tmp_path / "notes.txt").write_text("the user's own file")
    claim = claim_run_folder(tmp_path)  # the kernel dropped the dead process's lock
    assert (tmp_path / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} ")
    # A stale reason or checkpoint never stands beside a new record; the user's file stays.
    assert not (tmp_path / "error.json").exists() and not (tmp_path / "checkpoints").exists()
    assert (tmp_path / "notes.txt").read_text() == "the user's own file"
    claim.release()


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(BridgeEvalError, match="run folder .*file/run: cannot write there"):
        claim_run_folder(tmp_path / "file" / "run")


@pytest.mark.slow
def test_a_finished_run_is_never_overwritten_without_overwrite(tmp_path):
    run = tmp_path / "run"
    assert _train(run, "seed=1").returncode == 0
    before = _snapshot(run)
    proc = _train(run, "seed=5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"bridgeeval: error: run folder {run} holds a finished run (metrics.json); write this run elsewhere "
        "(a new hydra.run.dir), or replace that run with overwrite=true"]
    assert _snapshot(run) == before  # .hydra/overrides.yaml, the log and the records untouched

    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "fold4.ckpt").write_text("an old fold's checkpoint")
    proc = _train(run, "seed=5", "overwrite=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["seed"] == 5
    assert "seed=5" in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert not (run / "checkpoints").exists()  # the replaced run's files do not stand beside the new one's


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_folder_never_mix(tmp_path):
    run = tmp_path / "run"
    first, second = (_train(run, f"seed={s}", wait=False) for s in (1, 2))
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "bridgeeval: error: run folder" in refused and "Traceback" not in refused
    seed = json.loads((run / "metrics.json").read_text())["seed"]
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert f"seed={seed}" in overrides and len([o for o in overrides if o.startswith("seed=")]) == 1


@pytest.mark.slow
def test_a_resumed_sweep_in_the_same_folder_starts_new_job_folders(tmp_path):
    sweep = tmp_path / "sweep"
    args = [sys.executable, "train.py", "-m", *TINY, "hparams_search=tpe", "hydra.sweeper.n_trials=1",
            f"hydra.sweep.dir={sweep}", f"hydra.sweeper.storage=journal://{tmp_path / 'study.log'}",
            "hydra.sweeper.study_name=resume-here"]
    for trials in (1, 2):
        proc = subprocess.run([*args, f"hydra.sweeper.n_trials={trials}"], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "HYDRA_FULL_ERROR": "0"})
        assert proc.returncode == 0, proc.stderr[-2000:]
    folders = sorted(p.name for p in sweep.iterdir() if p.name.isdigit())
    assert folders == ["0", "1"]
    assert all((sweep / f / "metrics.json").is_file() for f in folders)
