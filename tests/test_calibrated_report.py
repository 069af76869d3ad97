"""``bridgeeval report --null``: a real job's mNNOs against their permutation null, from its kept
mapped vectors, equal to ``score --null`` on the same arrays; a changed data set is refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from test_cli_score import run_cli
from test_train import REPO

from bridgeeval.data.datasets import load_paired


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("job")
    proc = subprocess.run([sys.executable, "train.py", "debug=fast", "mapper=lin", "cv.folds=2", "logger=none",
                           "trainer.max_epochs=2", f"hydra.run.dir={folder}"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (folder / "mapped.npy").is_file()
    return folder


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| imagenet1k")]


def test_report_null_equals_score_null_on_the_jobs_arrays(job, tmp_path):
    code, out, err = run_cli("report", job, "--null", "40", "--no-paper")
    assert code == 0, err
    table = out[out.index("Calibrated against a permutation null (40 shuffles"):]
    (row,) = _rows(table)
    record = json.loads((job / "metrics.json").read_text())

    data = load_paired({"name": "imagenet1k"}, None, record["direction"])
    np.save(tmp_path / "x.npy", data.input)
    np.save(tmp_path / "y.npy", data.target)
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", job / "mapped.npy", "--null", "40",
                             "--json")
    assert code == 0, err
    scored = json.loads(out)
    for column, pair in ((1, "input_mapped"), (2, "target_mapped"), (3, "input_target")):
        raw, calibrated = re.match(r"([\d.]+) / ([\d.]+) \(p", row[column]).groups()
        assert float(raw) == pytest.approx(record[f"pooled/mnno_{pair}"], abs=5e-4)
        assert float(calibrated) == pytest.approx(scored["null"][f"mnno_{pair}"]["calibrated"], abs=5e-4)
    assert float(row[4]) == pytest.approx(scored["mnno_chance"], abs=5e-5)
    plain, csls = map(float, row[5].split(" / "))
    assert (plain, csls) == (pytest.approx(scored["recall_at_k"], abs=5e-4),
                             pytest.approx(scored["recall_at_k_csls"], abs=5e-4))


def test_a_job_whose_data_changed_is_refused_in_one_line(job, tmp_path):
    """mapped.npy that no longer matches the job's recorded values: refused, nothing calibrated."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(job, copy)
    mapped = np.load(copy / "mapped.npy")
    np.save(copy / "mapped.npy", mapped[::-1].copy())  # rows out of order: another pairing
    code, out, err = run_cli("report", copy, "--null", "5", "--no-paper")
    assert code == 2 and "the data set changed since the job ran" in err and "Traceback" not in err
    code, out, err = run_cli("report", job, "--null", "5", "--format", "csv")
    assert code == 2 and "--null and --bootstrap add markdown tables" in err


def test_report_bootstrap_equals_score_bootstrap_on_the_jobs_arrays(job, tmp_path):
    """The same items, seed and resamples: report's intervals are score's, for mNNO and CKA."""
    code, out, err = run_cli("report", job, "--bootstrap", "10", "--measures", "cka", "--no-paper")
    assert code == 0, err
    table = out[out.index("Bootstrap intervals over items (95%, 10 resamples)"):]
    rows = {r[1]: r for r in _rows(table)}
    record = json.loads((job / "metrics.json").read_text())
    data = load_paired({"name": "imagenet1k"}, None, record["direction"])
    np.save(tmp_path / "x.npy", data.input)
    np.save(tmp_path / "y.npy", data.target)
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", job / "mapped.npy", "--measures",
                             "mnno,cka", "--bootstrap", "10", "--json")
    assert code == 0, err
    scored = json.loads(out)
    for name in ("mnno", "cka"):
        for column, pair in ((2, "input_mapped"), (3, "target_mapped"), (4, "input_target")):
            value, low, high = map(float, re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", rows[name][column]).groups())
            interval = scored["interval"][pair][name]
            assert value == pytest.approx(scored[pair][name], abs=5e-4)
            assert (low, high) == (pytest.approx(interval["low"], abs=5e-4), pytest.approx(interval["high"], abs=5e-4))
