"""`bridgeeval report` never pools unlike runs: a cell holds only jobs whose every result-affecting
setting agrees (they differ by seed or fold), and each job folder counts once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sweep_helpers import FAST, grid_params

REPO = Path(__file__).resolve().parents[1]


def train(*args, cwd=REPO):
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def report(*args, said: list | None = None) -> list[dict]:
    """``bridgeeval report ... --format json`` in this process (the CLI's start-up is most of its time);
    what it says on stderr is appended to ``said``."""
    import contextlib
    import io

    from bridgeeval.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", *map(str, args), "--format", "json"])
    assert code == 0, err.getvalue()
    if said is not None:
        said += err.getvalue().splitlines()
    return json.loads(out.getvalue())


# Session, not module: xdist may run another module's tests between these, which would tear
# a module fixture down and build it again.
@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Path:
    """Real small runs: include_self both ways (2 folds each), two custom data sets, a 2-point grid sweep."""
    root = tmp_path_factory.mktemp("pooling")
    train("-m", "debug=fast", "logger=none", "metrics.include_self=true,false", f"hydra.sweep.dir={root}/self")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        x = rng.normal(size=(80, 6))
        np.save(root / f"{name}_x.npy", x)
        np.save(root / f"{name}_y.npy", x @ rng.normal(size=(6, 4)))
        train("debug=fast", "logger=none", "dataset=custom", f"dataset.input_path={root}/{name}_x.npy",
              f"dataset.target_path={root}/{name}_y.npy", "metrics.k=5", f"hydra.run.dir={root}/custom/{name}")
    train("hparams_search=paper_grid", f"paths.log_dir={root}/sweep", *FAST, grid_params(lr="0.01,0.001", hidden="64"),
          f"hydra.sweep.dir={root}/sweep/grid")
    return root


def test_runs_with_and_without_self_are_separate_rows(runs):
    rows = report(runs / "self", "--no-paper")
    assert sorted(r["include_self"] for r in rows) == [False, True]
    for row in rows:
        jobs = [json.loads((Path(j) / "metrics.json").read_text()) for j in row["jobs"]]
        assert len(jobs) == 1 and jobs[0]["include_self"] == row["include_self"]
        assert row["mnno_input_mapped"] == pytest.approx(jobs[0]["val/mnno_input_mapped"])


def test_two_custom_data_sets_are_separate_rows(runs):
    rows = report(runs / "custom")
    assert len(rows) == 2
    assert {Path(r["input_path"]).name for r in rows} == {"a_x.npy", "b_x.npy"}


def test_a_sweep_reports_its_best_trial_or_each_trial_never_a_pool(runs):
    sweep = runs / "sweep" / "grid"
    said = []
    best = report(sweep, said=said)
    assert len(best) == 1 and len(best[0]["jobs"]) == 1
    losses = {j.parent.name: json.loads(j.read_text())["val/loss"] for j in sweep.glob("*/metrics.json")}
    assert Path(best[0]["jobs"][0]).name == min(losses, key=losses.get)
    # ... and says so: which study, how many trials, which one is shown, and how to see them all
    note = [line for line in said if "shown as its best" in line]
    assert len(note) == 1 and ": 2 trials, shown as its best (" in note[0] and best[0]["jobs"][0] in note[0]
    assert note[0].endswith("--each-trial shows every trial")
    said.clear()
    each = report(sweep, "--each-trial", said=said)
    assert not [line for line in said if "shown as its best" in line]
    assert len(each) == 2 and sorted(r["optimizer.lr"] for r in each) == [0.001, 0.01]


def test_a_folder_given_twice_or_inside_another_counts_once(runs):
    once = report(runs / "self", "--no-paper")
    repeated = report(*[runs / "self"] * 10, runs / "self" / "0", "--no-paper")
    strip = lambda rows: [{k: v for k, v in r.items()} for r in rows]  # noqa: E731
    assert strip(repeated) == strip(once)  # same n, means and p-values: no extra samples
