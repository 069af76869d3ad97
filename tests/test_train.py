"""The training pipeline: configs compose, real trainings on real data, multiruns, logging."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from bridgeeval.errors import BridgeEvalError
from bridgeeval.models.losses import max_margin_loss
from bridgeeval.training import SkippedJob, train

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf")
GROUPS = {
    "dataset": ["imagenet1k", "custom"],
    "direction": ["text2image", "image2text"],
    "mapper": ["lin", "nn", "lstsq"],
    "loss": ["mse", "cosine", "max_margin"],
    "optimizer": ["rmsprop", "adam"],
    "trainer": ["default", "cpu", "gpu", "ddp"],
    "logger": ["csv", "wandb", "many", "none"],
    "callbacks": ["default", "early_stopping", "none"],
}


def make_cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=["debug=fast", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = str(tmp_path)
        del cfg.hydra
    return cfg


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_config_composes_and_instantiates(tmp_path, group, option):
    from bridgeeval.models.variants import variant_name

    cfg = make_cfg(tmp_path, f"{group}={option}")
    assert cfg.trainer.max_epochs == 1
    optimizer = instantiate(cfg.optimizer)(torch.nn.Linear(2, 2).parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    for node in list((cfg.callbacks or {}).values()):
        assert instantiate(node) is not None
    # Every group that builds an object is a _target_ config (mapper given its dims, the data
    # module its split in code).
    mapper = instantiate(cfg.mapper, in_dim=4, out_dim=3, depth=1)
    assert mapper(torch.zeros(2, 4)).shape == (2, 3)
    loss = instantiate(cfg.loss)
    assert loss.name == variant_name(cfg.loss) == (option if group == "loss" else "mse")
    assert mapper.name == variant_name(cfg.mapper) == (option if group == "mapper" else "nn")
    assert loss(torch.ones(2, 3), torch.ones(2, 3), torch.tensor([0, 1])) >= 0
    assert instantiate(cfg.data).func.__name__ == "CrossModalDataModule"
    for name, node in (cfg.logger or {}).items():
        assert node._target_.startswith(("pytorch_lightning.loggers", "bridgeeval.tracking.loggers"))
    if group == "trainer" and option in ("default", "cpu"):
        from bridgeeval.training.trainer import build_trainer

        assert build_trainer(cfg.trainer, logger=False).max_epochs == 1


def test_depth_builds_that_many_hidden_layers(tmp_path):
    """``depth=3`` on the command line reaches the MLP class as its argument."""
    from bridgeeval.models.mappers import MLP

    cfg = make_cfg(tmp_path, "depth=3", "mapper.hidden_units=8")
    net = instantiate(cfg.mapper, in_dim=50, out_dim=1280, depth=cfg.depth)
    assert isinstance(net, MLP) and sum(isinstance(m, torch.nn.Linear) for m in net) == 4
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [8, 8, 8, 1280]


def test_max_margin_picks_first_violating_negative():
    mapped = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Item 0 (cos 1 to its own) : negatives 1 (cos 1) and 2 (cos 0); the first violating is 1.
    # Item 1 (cos 0 to its own) : negative 0 (class differs) has cos 0 -> hinge 0.5; 2 shares its class.
    # Item 2 (cos .707 to own)  : negative 0 has cos .707 -> hinge 0.5.
    classes = torch.tensor([0, 1, 1])
    loss = max_margin_loss(mapped, target, classes, margin=0.5)
    assert float(loss) == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    # Multi-label classes: items sharing any label are not negatives of each other.
    multi = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    assert float(max_margin_loss(mapped, target, multi, margin=0.5)) == pytest.approx((0.0 + 0.0 + 0.5) / 3)


@pytest.mark.slow
@pytest.mark.parametrize("mapper", ["lin", "nn"])
@pytest.mark.parametrize("loss", ["mse", "cosine", "max_margin"])
def test_train_one_epoch_on_builtin(tmp_path, mapper, loss):
    cfg = make_cfg(tmp_path, f"mapper={mapper}", f"loss={loss}", "cv.fold=0", "logger=csv")
    summary = train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "finished" and saved["n_items"] > 600
    for key in ("val/mnno_input_mapped", "val/mnno_target_mapped", "val/mnno_input_target", "val/loss", "val/r2"):
        assert key in saved and saved[key] == pytest.approx(summary[key])
    assert 0.0 <= saved["val/mnno_input_mapped"] <= 1.0
    assert (tmp_path / "history.csv").read_text().count("\n") == 2  # header + one epoch
    # The hook's chance line for the curves: the exact mNNO of a random pairing of the fold's items.
    val_items = len(np.load(tmp_path / "items.npz")["fold0.index"])
    assert saved["val/mnno_chance"] == pytest.approx(cfg.metrics.k / (val_items - 1), rel=1e-7)  # float32 logs


@pytest.mark.slow
def test_train_on_iapr_slice_with_labels_and_euclidean(tmp_path, iapr_paths):
    text, image = iapr_paths
    cfg = make_cfg(
        tmp_path,
        "dataset=custom",
        f"dataset.input_path={image}",
        f"dataset.target_path={text}",
        "dataset.labels=first_column",
        "dataset.limit=300",
        "loss=max_margin",
        "metrics.neighbors=[cosine,euclidean]",
        "metrics.on_train=true",
        "trainer.max_epochs=2",
    )
    summary = train(cfg)
    assert summary["n_items"] == 300 and len(summary["folds"]) == 2
    for key in ("val/mnno_input_mapped_euclidean", "train/mnno_target_mapped", "val/recall_at_k"):
        assert key in summary
    assert "val/recall_at_k_cosine" not in summary  # the first metric's values are the unsuffixed ones
    fold_means = sum(f["val/mnno_input_mapped"] for f in summary["folds"]) / 2
    assert summary["val/mnno_input_mapped"] == pytest.approx(fold_means)


@pytest.mark.slow
def test_same_config_twice_gives_identical_metrics(tmp_path):
    a = train(make_cfg(tmp_path / "a", "cv.fold=1", "trainer.max_epochs=2"))
    b = train(make_cfg(tmp_path / "b", "cv.fold=1", "trainer.max_epochs=2"))
    keys = [k for k in a if k.startswith(("val/", "train/"))]
    assert keys and all(a[k] == b[k] for k in keys)


def test_bad_configurations_fail_before_training(tmp_path):
    with pytest.raises(SkippedJob, match="depth=3 would duplicate depth=1"):
        train(make_cfg(tmp_path, "mapper=lin", "depth=3"))
    with pytest.raises(BridgeEvalError, match="metrics.k=400 needs more validation items"):
        train(make_cfg(tmp_path, "metrics.k=400"))
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    import numpy as np

    np.save(x, np.random.default_rng(0).normal(size=(50, 4)))
    np.save(y, np.random.default_rng(1).normal(size=(49, 3)))
    with pytest.raises(BridgeEvalError, match="row counts differ"):
        train(make_cfg(tmp_path, "dataset=custom", f"dataset.input_path={x}", f"dataset.target_path={y}"))
    with pytest.raises(BridgeEvalError, match="no such file"):
        train(make_cfg(tmp_path, "dataset=custom", f"dataset.input_path={x}", "dataset.target_path=/nonexistent.npy"))
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_a_job_is_one_wandb_run_with_its_folds_inside(tmp_path):
    """Two folds, one W&B run: per-fold curves, the mean curve and summary equal to metrics.json,
    grouped and typed by direction/mapper; on the terminal one W&B line instead of wandb's ~35."""
    from wandb_records import run_contents

    env = {**os.environ, "WANDB_MODE": "offline"}
    args = ["logger=wandb", "debug=fast", "cv.folds=2", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "train.py", *args], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    said = (proc.stdout + proc.stderr).splitlines()
    assert not [line for line in said if line.startswith("wandb:")]
    assert len([line for line in said if "W&B offline (WANDB_MODE=offline)" in line and "wandb sync" in line]) == 1
    runs = list((tmp_path / "wandb").glob("offline-run-*/*.wandb"))
    assert len(runs) == 1
    run = run_contents(runs[0])
    assert run["job_type"] == "text2image/nn" and run["group"] == tmp_path.name
    assert run["config"]["mapper"]["_target_"] == "bridgeeval.models.mappers.MLP" and run["config"]["cv"]["folds"] == 2
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    key = "val/mnno_input_mapped"
    per_fold = {f["split"]: f[key] for f in metrics["folds"]}
    for fold, value in per_fold.items():  # each fold's curve, one point per epoch
        points = [row for row in run["history"] if f"{fold}/{key}" in row]
        assert [row["epoch"] for row in points] == [0, 1] and points[-1][f"{fold}/{key}"] == pytest.approx(value)
    means = [row for row in run["history"] if key in row]  # the mean over folds, per epoch
    assert [row["epoch"] for row in means] == [0, 1] and means[-1][key] == pytest.approx(metrics[key])
    assert run["summary"][f"{key}_std"] == pytest.approx(metrics[f"{key}_std"])
    assert run["summary"]["pooled/mnno_input_mapped"] == pytest.approx(metrics["pooled/mnno_input_mapped"])
    assert any(row.get("folds/_type") == "table-file" and row.get("folds/nrows") == 2 for row in run["history"])


def run_train(*args, cwd=REPO):
    return subprocess.run([sys.executable, "train.py", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_multirun_writes_one_folder_and_metrics_per_job(tmp_path):
    proc = run_train(
        "-m", "mapper=nn,lin", "loss=mse,cosine", "debug=fast", "cv.fold=0", "logger=none", f"hydra.sweep.dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The two known-harmless warnings of every run are filtered where they arise.
    assert "`srun` command is available" not in proc.stderr and "LeafSpec" not in proc.stderr
    # Each job ends by saying what it found and where its files went.
    said = proc.stdout + proc.stderr
    assert said.count("f(X)'s neighbourhoods are closer to") == 4 and said.count(f"results: {tmp_path}/") == 4
    # Each job starts with where the multirun is, and from the second the time left at its pace.
    progress = [line.split(" - ", 1)[1] for line in said.splitlines() if " - job " in line and " of 4" in line]
    assert progress[0] == "job 1 of 4 (mapper=nn loss=mse)", progress
    assert [p.split(" (")[0] for p in progress] == [f"job {k} of 4" for k in (1, 2, 3, 4)]
    assert all(re.search(r"\); about \d+ s left$", p) for p in progress[1:]), progress
    # ... and the multirun ends with one table of all four, and how to report them
    assert f"multirun: 4 job(s) in {tmp_path}" in said and f"Table 1: bridgeeval report {tmp_path}" in said
    rows = [line for line in said.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [r.split("|")[1].strip() for r in rows] == ["0", "1", "2", "3"]
    assert all("mapper=" in r and "loss=" in r and r.rstrip().endswith(("(input) |", "(target) |")) for r in rows)
    assert not any("debug=fast" in r for r in rows)  # what every job shares is left out
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    combos = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        combos.add((metrics["mapper"], metrics["loss"]))
        assert (job / ".hydra" / "config.yaml").is_file() and (job / "history.csv").is_file()
    assert combos == {("nn", "mse"), ("nn", "cosine"), ("lin", "mse"), ("lin", "cosine")}


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path):
    proc = run_train("dataset=custom", "dataset.input_path=/nope.npy", "dataset.target_path=/nope.npy",
                     f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "bridgeeval: error: /nope.npy: no such file"
    assert "Traceback" not in proc.stderr


def test_threads_setting_is_capped_by_slurm_and_yields_to_omp(monkeypatch):
    from bridgeeval.training.trainer import use_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
        use_threads(1)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        use_threads(2)
        assert torch.get_num_threads() == 1  # never more than the Slurm job's CPUs
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        use_threads(1)
        assert torch.get_num_threads() == 2  # the user's OMP_NUM_THREADS wins
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_preset_composes_and_runs_one_epoch(tmp_path, preset):
    """Each shipped preset, shrunk (1 epoch, 2 folds, 200 items), trains to a metrics.json that
    carries the preset's settings."""
    from omegaconf import OmegaConf

    cfg = make_cfg(tmp_path, f"experiment={preset}", "dataset.limit=200")
    preset_cfg = OmegaConf.load(REPO / "conf" / "experiment" / f"{preset}.yaml")
    summary = train(cfg)
    assert summary["status"] == "finished" and summary["n_items"] == 200
    assert summary["k"] == preset_cfg.metrics.k
    assert summary["include_self"] == bool(preset_cfg.metrics.get("include_self", False))
    assert summary["neighbor_metric"] == preset_cfg.metrics.neighbors[0]
    if preset_cfg.metrics.get("on_train"):
        assert "train/mnno_input_mapped" in summary  # the paper's Fig. 2 train curves
    if preset_cfg.get("cv", {}).get("evaluate") == "pooled":
        assert summary["evaluate"] == "pooled" and "pooled/mnno_input_mapped" in summary
    for extra in preset_cfg.metrics.neighbors[1:]:
        assert f"val/mnno_input_mapped_{extra}" in summary
