"""Epochs chosen by CV (``cv.select_epoch``): the argmin of the mean validation curve over the
folds, checked against the job's own history with numpy, carried to the sweep's objective, to
``sweep best`` and its retrain command."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from bridgeeval.errors import BridgeEvalError
from bridgeeval.reports.reproduce import Cell, Selection, selection_table
from bridgeeval.training import train
from bridgeeval.training.run import optimized_value
from sweep_helpers import REPO, grid_params, run_sweep
from test_train import make_cfg


def mean_curve(history_csv, key: str = "val/loss") -> np.ndarray:
    """Per epoch, the mean of ``key`` over the folds (numpy, from the CSV the job wrote)."""
    rows = [r for r in csv.DictReader(open(history_csv)) if r["split"] != "pooled"]
    epochs = sorted({int(r["epoch"]) for r in rows})
    return np.array([np.mean([float(r[key]) for r in rows if int(r["epoch"]) == e]) for e in epochs])


@pytest.mark.slow
def test_the_selected_epoch_is_the_argmin_of_the_mean_cv_curve(tmp_path):
    cfg = make_cfg(tmp_path, "mapper=lin", "cv.folds=3", "cv.select_epoch=true", "trainer.max_epochs=8",
                   "optimizer.lr=0.01")
    summary = train(cfg)
    curve = mean_curve(tmp_path / "history.csv")
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert len(curve) == 8 and record["epoch_budget"] == 8
    assert record["best_epoch"] == int(np.argmin(curve)) + 1
    assert record["val/loss@best_epoch"] == pytest.approx(curve.min(), abs=1e-9)
    mnno = mean_curve(tmp_path / "history.csv", "val/mnno_input_mapped")
    assert record["val/mnno_input_mapped@best_epoch"] == pytest.approx(mnno[record["best_epoch"] - 1], abs=1e-9)
    # What the sweep optimises: the chosen epoch's value, not the last epoch's.
    assert optimized_value(summary, "val/loss", select_epoch=True) == record["val/loss@best_epoch"]
    assert optimized_value(summary, "val/loss") == record["val/loss"]


def test_epochs_are_never_chosen_on_a_test_split(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(40, 4)))
    np.save(tmp_path / "y.npy", rng.normal(size=(40, 3)))
    np.savetxt(tmp_path / "test.txt", np.arange(40) % 4 == 0, fmt="%d")
    data = [f"dataset.input_path={tmp_path}/x.npy", f"dataset.target_path={tmp_path}/y.npy",
            f"dataset.test_path={tmp_path}/test.txt", "metrics.k=3"]
    cfg = make_cfg(tmp_path / "job", "dataset=custom", *data, "cv.select_epoch=true")
    with pytest.raises(BridgeEvalError, match="would choose the epochs on data set .* test split .* cv.protocol=train_cv"):
        train(cfg)
    assert not (tmp_path / "job" / "metrics.json").exists()
    train(make_cfg(tmp_path / "cv", "dataset=custom", *data, "cv.select_epoch=true", "cv.protocol=train_cv"))
    assert json.loads((tmp_path / "cv" / "metrics.json").read_text())["best_epoch"] == 1


def test_without_select_epoch_a_job_records_no_choice(tmp_path):
    from bridgeeval.training.run import _epoch_choice

    cfg = make_cfg(tmp_path)
    rows = [{"split": "fold0", "epoch": 0, "val/loss": 1.0}]
    assert cfg.cv.select_epoch is False and _epoch_choice(cfg, rows) == {}


@pytest.mark.slow
def test_sweep_best_reports_the_chosen_epoch_and_its_retrain_reproduces_the_value(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    run_sweep(tmp_path, grid_params(lr="0.01,0.001", hidden="64"), f"hydra.sweeper.storage={url}",
              "hydra.sweeper.study_name=s", "trainer.max_epochs=5")
    cli = [sys.executable, "-m", "bridgeeval.cli", "sweep", "best", "s", "--storage", url]
    best = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, check=True).stdout)["best"]
    job = tmp_path / best["output_dir"]  # an absolute folder stays itself
    trial = json.loads((job / "metrics.json").read_text())
    curve = mean_curve(job / "history.csv")
    assert best["best_epoch"] == trial["best_epoch"] == int(np.argmin(curve)) + 1 and best["epoch_budget"] == 5
    assert best["value"] == pytest.approx(curve.min(), abs=1e-9) == trial["val/loss@best_epoch"]
    words = shlex.split(best["command"])
    assert [w for w in words if w.startswith("trainer.max_epochs=")] == [f"trainer.max_epochs={best['best_epoch']}"]
    said = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert f"epochs chosen by CV: {best['best_epoch']} of 5" in said
    # report shows the trials as they ran (to the budget) and says where CV stopped, unless at the budget
    report = subprocess.run([sys.executable, "-m", "bridgeeval.cli", "report", str(job.parent)],
                            capture_output=True, text=True, check=True).stderr
    note = f"its trials ran to their 5-epoch budget, shown here; CV chose {best['best_epoch']} epochs"
    assert (note in report) == (best["best_epoch"] < 5), report
    assert f"shown as its best ({job})" in report  # the trial the sweep scored best, at its chosen epoch
    # Retrained for the chosen epochs, the job's final values are the trial's at that epoch.
    proc = subprocess.run([sys.executable, *words[1:]], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = (tmp_path / "train" / "runs").glob("*/metrics.json")
    retrained = json.loads(run.read_text())
    assert retrained["val/loss"] == pytest.approx(best["value"], abs=1e-6)
    for key, value in best["metrics"].items():
        assert retrained[key] == pytest.approx(value, abs=1e-6), key


def test_a_choice_at_the_budgets_last_epoch_is_flagged():
    cells = [Cell("iaprtc", "image2text", "lin"), Cell("iaprtc", "image2text", "nn")]
    table = selection_table([Selection(cells[0], {"optimizer.lr": 0.001}, 0.35, 3, 1.0, epochs=100, budget=100),
                             Selection(cells[1], {"optimizer.lr": 0.001}, 0.33, 60, 1.0, epochs=41, budget=100)])
    assert "| 100 of 100† |" in table and "| 41 of 100 |" in table
    assert "† the budget's last epoch (iaprtc-image2text-lin-d1-mse)" in table
