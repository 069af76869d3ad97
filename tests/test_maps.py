"""A trained map is reusable: its checkpoint reloads alone and `bridgeeval map` applies it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _cli(capsys, *args):
    """The command in-process (as `bridgeeval ...`): exit code, stdout, stderr."""
    from bridgeeval.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_a_reloaded_map_reproduces_its_folds_validation_mnno(tmp_path, capsys):
    def cli(*args):
        return _cli(capsys, *args)

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", "mapper=nn", "cv.fold=1", "trainer.max_epochs=2", "checkpoint=true", "logger=none",
         "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "weights_only" not in proc.stdout + proc.stderr  # Lightning's notice when it is not given
    metrics = json.loads((run / "metrics.json").read_text())
    (fold,) = metrics["folds"]

    from bridgeeval.data.datasets import load_paired
    from bridgeeval.models.module import MappingModule

    data = load_paired({"name": "imagenet1k"}, None, "text2image")
    val = np.load(run / "items.npz")["fold1.index"]
    np.save(tmp_path / "x.npy", data.input[val])
    np.save(tmp_path / "y.npy", data.target[val])
    ckpt = run / "checkpoints" / "fold1.ckpt"
    module = MappingModule.load_from_checkpoint(ckpt)  # alone, read as data: no mapper rebuilt by hand
    assert module.hparams.mapper["_target_"] == "bridgeeval.models.mappers.MLP" and module.hparams.mapper["dropout"] == 0.25

    code, out, err = cli("map", ckpt, tmp_path / "x.npy", "-o", tmp_path / "fx.npy")
    assert code == 0 and "fx.npy (" in out and "weights_only" not in out + err, err
    code, out, err = cli("score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "fx.npy", "--json")
    assert code == 0, err
    score = json.loads(out)
    for key in ("mnno_input_mapped", "mnno_target_mapped", "mnno_input_target"):
        assert score[key] == pytest.approx(fold[f"val/{key}"], abs=1e-6)  # the job's own validation values

    code, out, err = cli("map", ckpt, tmp_path / "x.npy", "-o", tmp_path / "fx.csv")  # CSV, read back by score
    assert code == 0, err
    code, out, err = cli("score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "fx.csv", "--json")
    assert code == 0 and json.loads(out)["mnno_input_mapped"] == pytest.approx(fold["val/mnno_input_mapped"], abs=1e-6)

    np.save(tmp_path / "wide.npy", np.zeros((3, 7), dtype=np.float32))
    import torch

    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, tmp_path / "other.ckpt")  # someone else's
    for args, message in [
        ((tmp_path / "other.ckpt", tmp_path / "x.npy", "-o", tmp_path / "o.npy"), "other.ckpt: not a bridgeeval map checkpoint"),
        ((ckpt, tmp_path / "wide.npy", "-o", tmp_path / "o.npy"), "wide.npy: rows of 7 values; the map takes 50"),
        ((tmp_path / "x.npy", tmp_path / "x.npy", "-o", tmp_path / "o.npy"), "x.npy: not a checkpoint (UnpicklingError)"),
        ((tmp_path / "none.ckpt", tmp_path / "x.npy", "-o", tmp_path / "o.npy"), "none.ckpt: no such checkpoint"),
        ((ckpt, tmp_path / "x.npy", "-o", tmp_path / "o.txt"), "write .npy or .csv"),
    ]:
        code, _, err = cli("map", *args)
        assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "o.npy").exists()
