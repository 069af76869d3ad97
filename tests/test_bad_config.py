"""Bad configuration values: one line naming the key, the value and what is allowed; exit 2;
nothing written (the check runs before Hydra creates the job folder)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from bridgeeval.config import check_train_config, check_untrained_config
from bridgeeval.errors import BridgeEvalError

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf")

TRAIN_CASES = [
    ("optimizer.lr=-1", "optimizer.lr=-1.0: must be a positive, finite number"),
    ("optimizer.lr=nan", "optimizer.lr=nan: must be a positive, finite number"),
    ("optimizer.lr=fast", "optimizer.lr='fast': expected a number"),
    ("data.batch_size=0", "data.batch_size=0: must be 1 or more"),
    ("seed=abc", "seed='abc': expected an integer"),
    ("seed=-1", "seed=-1: must be from 0 to 4294967295"),
    ("dataset.limit=abc", "dataset.limit='abc': expected an integer or null"),
    ("dataset.limit=-5", "dataset.limit=-5: must be 2 or more"),
    ("dataset.name=imagenet2k", "dataset.name='imagenet2k': unknown; choose one of"),
    ("mapper.hidden_units=-5", "mapper.hidden_units=-5: must be 1 or more"),
    ("mapper.hidden_units=0", "mapper.hidden_units=0: must be 1 or more"),
    ("mapper.dropout=1", "mapper.dropout=1: must be in [0, 1)"),
    ("mapper.hidden_units=abc", "mapper.hidden_units='abc': expected a whole number of units"),
    ("loss=max_margin loss.margin=inf", "loss.margin=inf: must be a positive, finite number"),
    ("mapper=lin +mapper.hidden_units=64", "mapper.hidden_units: not a setting of mapper=lin (settings: none)"),
    ("mapper.activation=gelu", "mapper.activation='gelu': unknown; choose one of relu, tanh, sigmoid"),
    ("depth=abc", "depth='abc': expected an integer"),
    ("depth=0", "depth=0: must be 1 or more"),
    ("metrics.neighbors=[]", "metrics.neighbors=[]: name at least one of cosine, euclidean"),
    ("metrics.neighbors=[cosine,cosine]", "metrics.neighbors=['cosine', 'cosine']: a name is repeated"),
    ("metrics.neighbors=[manhattan]", "metrics.neighbors: unknown 'manhattan'"),
    ("metrics.include_self=maybe", "metrics.include_self='maybe': expected a boolean (true or false)"),
    ("metrics.k=0", "metrics.k=0: must be 1 or more"),
    ("loss=max_margin loss.margin=-0.5", "loss.margin=-0.5: must be a positive, finite number"),
    # A misspelt key added to a built-in group is named, not passed on to the builder.
    ("+mapper.hiden_units=5", "mapper.hiden_units: not a setting of mapper=nn (settings: hidden_units, activation, dropout)"),
    ("loss=max_margin +loss.margn=0.1", "loss.margn: not a setting of loss=max_margin (settings: margin)"),
    ("+loss.margin=0.1", "loss.margin: not a setting of loss=mse (settings: none)"),
    ("~mapper.activation", "mapper.activation is required for mapper=nn"),
    ("loss=max_margin ~loss.margin", "loss.margin is required for loss=max_margin"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: must be 1 or more"),
    # The YAML is the one home of each value: a key removed has no second default in code.
    ("~trainer.max_epochs", "trainer.max_epochs is required: give trainer.max_epochs=... (removed with ~trainer.max_epochs?)"),
    ("~cv.folds", "cv.folds is required"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1: must be 1 or more"),
    ("trainer.threads=0", "trainer.threads=0: must be 1 or more"),
    ("cv.folds=1", "cv.folds=1: must be 2 or more"),
    ("cv.fold=5", "cv.fold=5: must be from 0 to 1"),
    ("cv.protocol=loo", "cv.protocol='loo': unknown; choose one of auto, cv, split"),
    ("checkpoint=sometimes", "checkpoint='sometimes': expected a boolean"),
    ("dataset=custom", "dataset.input_path is required"),
    ("features.text=bert", "features.text='bert' is not available for dataset=imagenet1k; it has glove50"),
    ("dataset=custom dataset.input_path=x.npy dataset.target_path=y.npy dataset.id_column=perhaps", "dataset.id_column='perhaps': expected a boolean"),
]

UNTRAINED_CASES = [
    ("draws=0", "draws=0: must be 1 or more"),
    ("alpha=nan", "alpha=nan: must be in (0, 1)"),
    ("alpha=1.5", "alpha=1.5: must be in (0, 1)"),
    ("mappings=[]", "mappings=[]: name at least one of nn, lin, none"),
    ("similarities=[dot]", "similarities: unknown 'dot'"),
    ("min_pairs=1", "min_pairs=1: must be 3 or more"),
    ("map.init_range=0", "map.init_range=0.0: must be a positive, finite number"),
    ("map.output_dim=two", "map.output_dim='two': expected an integer"),
]


def compose_task(name, overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.mark.parametrize("overrides,message", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_train_values_are_one_named_error(overrides, message):
    cfg = compose_task("train", ["debug=fast", *overrides.split()])
    with pytest.raises(BridgeEvalError) as err:
        check_train_config(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides,message", UNTRAINED_CASES, ids=[c[0] for c in UNTRAINED_CASES])
def test_bad_untrained_values_are_one_named_error(overrides, message):
    cfg = compose_task("untrained", overrides.split())
    with pytest.raises(BridgeEvalError) as err:
        check_untrained_config(cfg)
    assert message in str(err.value)


def test_every_shipped_config_passes_the_checks():
    for overrides in ([], ["mapper=lin"], ["loss=max_margin"], ["loss=cosine", "optimizer=adam"],
                      ["experiment=paper_table1"], ["metrics.neighbors=[cosine,euclidean]"]):
        typed = check_train_config(compose_task("train", overrides))
        assert typed.optimizer.lr > 0 and typed.metrics.k >= 1
    assert check_untrained_config(compose_task("untrained", [])).draws == 10


def test_values_are_converted_to_their_declared_types():
    typed = check_train_config(compose_task("train", ["seed=7", "metrics.include_self=yes", "optimizer.lr=1e-2"]))
    assert typed.seed == 7 and typed.metrics.include_self is True and typed.optimizer.lr == 0.01


def run_entry(script, *args, cwd):
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "script,overrides,message",
    [
        ("train.py", ["optimizer.lr=-1"], "optimizer.lr=-1.0: must be a positive, finite number"),
        ("train.py", ["metrics.include_self=maybe"], "expected a boolean"),
        ("untrained.py", ["draws=0"], "draws=0: must be 1 or more"),
        # Groups removed, and Hydra's own errors (were several lines and exit 1)
        ("train.py", ["~optimizer"], "optimizer: missing from the config (removed with ~optimizer?)"),
        ("train.py", ["~callbacks"], "callbacks: missing from the config"),
        ("train.py", ["trainer.max_epochs=1", "~trainer"], "Could not override 'trainer.max_epochs'"),
        ("train.py", ["mäpper=nn"], "cannot read the override 'mäpper=nn'"),
        ("train.py", ["mapper=nn)"], "cannot read the override 'mapper=nn)': extraneous input ')'"),
        ("train.py", ["seed=" + "1" * 5000], "value has 5000 digits"),
        ("train.py", ["mapper=cnn"], "mapper=cnn: no such config; choose one of lin, lstsq, nn"),
        ("untrained.py", ["mapz=1"], "Could not override 'mapz'"),
        # Sweeps refused before a trial or a folder
        ("train.py", ["-m", "hparams_search=tpe", "hydra.sweeper.direction=[minimize,maximize]"],
         "hydra.sweeper.direction gives 2 objectives, but each job returns one value"),
        ("train.py", ["-m", "hparams_search=tpe", 'hydra.sweeper.params={optimizer.lr:"interval(1,0)"}'],
         "sweep params: optimizer.lr: interval(1,0): low <= high must hold"),
        ("train.py", ["-m", "hparams_search=tpe", 'hydra.sweeper.params={optimizer.lr:"tag(log, interval(0,1))"}'],
         "low > 0 must hold for log=True"),
        # A storage folder that takes no file (sysfs: read-only even for root)
        ("train.py", ["-m", "hparams_search=tpe", "hydra.sweeper.storage=journal:///sys/study.log"],
         "storage: cannot write in /sys (Permission denied)"),
        ("train.py", ["-m", "hparams_search=tpe", "hydra.sweeper.storage=sqlite:////sys/study.db"],
         "storage: cannot write in /sys (Permission denied)"),
    ],
    ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None,
)
def test_entry_points_exit_2_with_one_line_and_no_job_folder(tmp_path, script, overrides, message):
    proc = run_entry(script, *overrides, f"hydra.run.dir={tmp_path}/job", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bridgeeval: error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []  # no job folder, no outputs/


def test_an_output_folder_that_cannot_be_written_is_named_before_any_work(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_entry("train.py", "debug=fast", "logger=none", f"paths.output_dir={tmp_path}/file/out",
                     f"hydra.run.dir={tmp_path}/job", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"bridgeeval: error: run folder {tmp_path}/file/out: cannot write there (Not a directory); "
        "choose another with paths.output_dir=..."]
    assert not (tmp_path / "job" / "metrics.json").exists() and not (tmp_path / "job" / ".hydra").exists()


def test_a_failed_multirun_job_keeps_its_reason_and_no_metrics(tmp_path):
    proc = run_entry("train.py", "-m", "debug=fast", "cv.fold=0", "logger=none", "optimizer.lr=0.001,-1",
                     f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "bridgeeval: error: optimizer.lr=-1.0: must be a positive, finite number"
    assert (tmp_path / "0" / "metrics.json").is_file() and not (tmp_path / "0" / "error.json").exists()
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "0" / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    failed = tmp_path / "1"
    assert not (failed / "metrics.json").exists()
    error = json.loads((failed / "error.json").read_text())
    assert error["status"] == "failed" and error["user_error"] and "optimizer.lr=-1.0" in error["error"]
    assert "job failed: optimizer.lr=-1.0" in (failed / "train.log").read_text()


def test_custom_splits_and_classes_that_cannot_train_are_named(tmp_path):
    """A test column that is all 0 or all 1, or not 0/1; max-margin with a single class (no negative
    exists, the loss is 0 and nothing trains): each one line before any training."""
    import numpy as np
    from test_train import make_cfg

    from bridgeeval.training import train

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(60, 6)))
    np.save(tmp_path / "y.npy", rng.normal(size=(60, 4)))
    (tmp_path / "one_class.txt").write_text("3\n" * 60)
    base = ["dataset=custom", f"dataset.input_path={tmp_path}/x.npy", f"dataset.target_path={tmp_path}/y.npy",
            "metrics.k=3"]
    cases = {
        "all_train.csv": ("0\n" * 60, "every row is train; a split needs both 0 and 1 rows"),
        "all_test.csv": ("1\n" * 60, "every row is test; a split needs both 0 and 1 rows"),
        "twos.csv": ("0\n" * 50 + "2\n" * 10, "holds 2; only 0 (train) and 1 (test) are allowed"),
        "short.csv": ("0\n1\n", "2 rows, but the input has 60"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(BridgeEvalError, match=re.escape(message)):
            train(make_cfg(tmp_path / "out", *base, f"dataset.test_path={tmp_path}/{name}"))
    with pytest.raises(BridgeEvalError, match="every item of data set 'custom' shares a class"):
        train(make_cfg(tmp_path / "out", *base, "loss=max_margin", f"dataset.labels={tmp_path}/one_class.txt"))
    assert not (tmp_path / "out" / "metrics.json").exists()
