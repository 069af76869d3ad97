"""What a job keeps beside ``metrics.json``: the mapped vectors its values were computed from,
so that ``bridgeeval score`` on them gives those values again without retraining."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from bridgeeval.data.datasets import load_paired
from bridgeeval.training import train
from test_train import make_cfg

KEYS = ("mnno_input_mapped", "mnno_target_mapped", "mnno_input_target", "mse", "r2", "recall_at_k", "hubness",
        "mnno_chance")


def _score(tmp_path, x, y, mapped) -> dict:
    for name, values in (("x", x), ("y", y), ("mapped", mapped)):
        np.save(tmp_path / f"{name}.npy", values)
    proc = subprocess.run(["bridgeeval", "score", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
                           str(tmp_path / "mapped.npy"), "--json"], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def _trained(job, *overrides):
    """A real job in ``job``: its record and its data in the row order it was trained on."""
    cfg = make_cfg(job, *overrides)
    train(cfg)
    data = load_paired(dict(cfg.dataset), dict(cfg.features), cfg.direction)
    return json.loads((job / "metrics.json").read_text()), data


@pytest.mark.slow
def test_a_folds_job_keeps_its_out_of_fold_mapped_vectors_and_score_gives_its_pooled_values(tmp_path):
    job = tmp_path / "job"
    record, data = _trained(job, "mapper=nn", "cv.folds=3")
    mapped = np.load(job / "mapped.npy")
    assert mapped.shape == data.target.shape and mapped.dtype == np.float32
    assert not (job / "mapped_splits.npz").exists()
    scored = _score(tmp_path, data.input, data.target, mapped)
    for key in KEYS:
        assert scored[key] == pytest.approx(record[f"pooled/{key}"], abs=1e-6), key


@pytest.mark.slow
def test_a_one_fold_job_keeps_its_splits_mapped_vectors_with_their_item_indices(tmp_path):
    job = tmp_path / "job"
    record, data = _trained(job, "mapper=lin", "cv.fold=1")
    assert not (job / "mapped.npy").exists()  # one fold does not cover the set: nothing to pool
    with np.load(job / "mapped_splits.npz") as saved:
        index, mapped = saved["fold1.index"], saved["fold1.mapped"]
    scored = _score(tmp_path, data.input[index], data.target[index], mapped)
    for key in ("mnno_input_mapped", "mnno_target_mapped", "mnno_input_target"):
        assert scored[key] == pytest.approx(record[f"val/{key}"], abs=1e-6), key
