"""`bridgeeval reproduce table1`: grid selection by CV on the training items, evaluation of the
selected configuration under the released protocol, the table; rerun skips what is done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import SHARED_DATA, shared_file

from bridgeeval.sweeps.storage import open_storage


def _fold_items(trial) -> list:
    """The validation items of each fold of a trial's job (items.npz: one index array per fold)."""
    import numpy as np

    items = np.load(Path(trial.user_attrs["output_dir"]) / "items.npz")
    return [items[k] for k in items.files if k.endswith(".index") and not k.startswith("pooled.")]


def _reproduce(tmp_path, *args):
    env = {**os.environ, "BRIDGEEVAL_DATA": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "bridgeeval.cli", "reproduce", "table1", "--out", str(tmp_path / "out"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_quick_reproduction_selects_by_cv_evaluates_the_choice_and_resumes(tmp_path):
    """wiki (a train/test split: seeds on it); imagenet1k's cross-validated evaluation is the
    closed-form test's below."""
    shared_file("wiki", "wiki.mat")
    env = {**os.environ, "BRIDGEEVAL_DATA": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-m", "bridgeeval.cli", "data", "fetch", "wiki", "--mirror", str(SHARED_DATA)],
                   check=True, capture_output=True, env=env)
    args = ["--datasets", "wiki", "--directions", "text2image", "--mappers", "lin", "--quick", "--seeds", "2",
            "--override", "trainer.max_epochs=1", "--override", "cv.folds=2"]
    proc = _reproduce(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "reproduce.json").read_text())
    cells = {c["cell"]: c for c in summary["cells"]}
    assert set(cells) == {"wiki-text2image-lin-d1-mse"}
    for name, cell in cells.items():
        study = optuna.load_study(study_name=f"{name}-quick", storage=open_storage(f"sqlite:///{out}/optuna/{name}-quick.db"))
        done = [t for t in study.trials if t.state.is_finished()]
        assert len(done) == 2 == cell["trials"]  # the quick grid's rates, each once (no hidden layer to search)
        best = min(done, key=lambda t: t.value)
        assert cell["params"] == best.params and cell["cv_val_loss"] == pytest.approx(best.value)
        # selection never saw wiki's test items: its folds cover the 2,173 training pairs
        trial_metrics = json.loads((Path(best.user_attrs["output_dir"]) / "metrics.json").read_text())
        assert trial_metrics["protocol"] == "cv" and trial_metrics["n_items"] == 2866
        assert sum(len(f) for f in _fold_items(best)) == 2173
        jobs = sorted((out / "evaluate" / name).glob("*/metrics.json"))
        assert len(jobs) == 2  # one job per seed on the official split
        for job in jobs:
            m = json.loads(job.read_text())
            assert m["include_self"] and m["k"] == 10 and m["protocol"] == "split"
            config = (job.parent / ".hydra" / "overrides.yaml").read_text()
            assert all(f"{k}={v}" in config for k, v in cell["params"].items())  # the selected configuration
            # the evidence kept: the seed's map and f(X) of its test split
            assert sorted(p.name for p in (job.parent / "checkpoints").glob("*.ckpt"))
            assert (job.parent / "mapped_splits.npz").is_file()
    table = (out / "table1.md").read_text()
    assert "quick grid, 3-fold selection, 2 seeds;" in table and "Selected by CV loss on the training items" in table
    assert "| wiki" in table
    # Each evaluated job against its permutation null, from its kept mapped vectors.
    assert "Calibrated against a permutation null (100 shuffles" in table
    calibrated = summary["calibrated"]
    assert sorted(row["setting"] for row in calibrated) == ["wiki text2image lin"] * 2
    for row in calibrated:
        null = row["null"]["mnno_input_mapped"]
        assert null["permutations"] == 100 and 0 <= null["calibrated"] <= 1 and null["chance"] > 0
    said = proc.stdout
    assert said.count("select   ") == 1 and said.count("evaluate ") == 1 and f"results: {out}" in said

    started = time.time()
    again = _reproduce(tmp_path, *args)  # everything done: no train.py process, no new trial
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already done") == 1
    assert not list((out / "logs").glob("*")) or all(p.stat().st_mtime < started for p in (out / "logs").glob("*"))
    for name, cell in cells.items():
        study = optuna.load_study(study_name=f"{name}-quick", storage=open_storage(f"sqlite:///{out}/optuna/{name}-quick.db"))
        assert len(study.trials) == cell["trials"]


def test_reproduce_names_a_missing_data_set_and_a_bad_option(tmp_path):
    proc = _reproduce(tmp_path, "--datasets", "iaprtc")
    assert proc.returncode == 2 and "iaprtc" in proc.stderr and "bridgeeval data fetch iaprtc" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = _reproduce(tmp_path, "--depths", "1,three")
    assert proc.returncode == 2 and "--depths='1,three'" in proc.stderr


def test_the_quick_grid_of_a_net_is_its_rates_units_and_dropouts():
    from hydra import compose, initialize_config_dir

    from bridgeeval.reports.reproduce import Cell, grid_override
    from bridgeeval.sweeps.space import grid_points, parse_space
    from hydra_plugins.bridgeeval_optuna_sweeper.optuna_sweeper import active_params

    def space(mapper):
        overrides = ["hparams_search=paper_grid", f"mapper={mapper}", *grid_override(Cell("wiki", "text2image", mapper), True)]
        with initialize_config_dir(version_base="1.3", config_dir=str(Path(__file__).parents[1] / "conf")):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        params = {**cfg.hydra.sweeper.params, **active_params(cfg.hydra.sweeper.conditional_params, cfg)}
        return grid_points(parse_space({k: v for k, v in params.items() if v is not None})[0])

    net = space("nn")
    key = lambda p: p["optimizer.lr"]  # noqa: E731
    assert sorted(net, key=key) == [{"optimizer.lr": lr, "mapper.hidden_units": 256, "mapper.dropout": 0.25}
                                    for lr in (0.001, 0.01)]
    assert sorted(space("lin"), key=key) == [{"optimizer.lr": 0.001}, {"optimizer.lr": 0.01}]


def test_quick_reproduction_of_the_closed_form_searches_its_whole_alpha_grid(tmp_path):
    """The quick grid once overrode lstsq's alphas with a key the sweeper config does not hold,
    and the cell failed; the closed form fits in one step, so its 8 alphas all run."""
    proc = _reproduce(tmp_path, "--datasets", "imagenet1k", "--directions", "text2image", "--mappers", "lstsq",
                      "--quick", "--null", "0", "--override", "cv.folds=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    (cell,) = json.loads((out / "reproduce.json").read_text())["cells"]
    assert cell["trials"] == 8 and set(cell["params"]) == {"mapper.alpha"}
    assert "closed form" in (out / "table1.md").read_text()
    # imagenet1k has no official split: the selection saw all 639 pairs, and the evaluation is one
    # 5-fold job under the released protocol, its maps and pooled f(X) kept.
    study = optuna.load_study(study_name=f"{cell['cell']}-quick",
                              storage=open_storage(f"sqlite:///{out}/optuna/{cell['cell']}-quick.db"))
    best = min((t for t in study.trials if t.state.is_finished()), key=lambda t: t.value)
    assert sum(len(f) for f in _fold_items(best)) == 639
    (job,) = sorted((out / "evaluate" / cell["cell"]).glob("*/metrics.json"))
    m = json.loads(job.read_text())
    assert m["include_self"] and m["k"] == 10 and m["protocol"] == "cv" and m["n_items"] == 639
    assert f"mapper.alpha={cell['params']['mapper.alpha']}" in (job.parent / ".hydra" / "overrides.yaml").read_text()
    assert list((job.parent / "checkpoints").glob("*.ckpt")) and (job.parent / "mapped.npy").is_file()
