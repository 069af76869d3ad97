import json
import subprocess
import sys

import numpy as np
import pytest

from bridgeeval.data.formats import read_matrix
from bridgeeval.metrics import mnno


def run_cli(*args, cwd=None):
    proc = subprocess.run(
        [sys.executable, "-m", "bridgeeval.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_score_real_iapr_files_json(iapr_paths):
    text, image = iapr_paths
    code, out, err = run_cli("score", text, image, "--json", "-k", "10")
    assert code == 0, err
    got = json.loads(out)
    want = mnno(read_matrix(text).values, read_matrix(image).values, k=10)
    assert got["n"] == 1962 and got["mnno_input_target"] == pytest.approx(want)


def test_score_with_mapped_set_in_other_formats(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = x @ rng.normal(size=(5, 3))
    np.save(tmp_path / "x.npy", x)
    lines = [f"w{i} " + " ".join(f"{v:.6f}" for v in row) for i, row in enumerate(y)]
    (tmp_path / "y.txt").write_text("60 3\n" + "\n".join(lines) + "\n")
    import pandas as pd

    pd.DataFrame(y * 1.1).rename(columns=str).to_parquet(tmp_path / "f.parquet")
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.txt", tmp_path / "f.parquet", "--json", "-k", "5")
    assert code == 0, err
    report = json.loads(out)
    assert report["mnno_target_mapped"] == pytest.approx(1.0)  # f = 1.1 y keeps every cosine neighbour
    assert report["mse"] == pytest.approx(np.mean((0.1 * y) ** 2), rel=1e-4)
    code, out, _ = run_cli("score", tmp_path / "x.npy", tmp_path / "y.txt", "-k", "5")
    assert code == 0 and "mnno_input_target" in out


@pytest.mark.parametrize(
    "content,suffix,message",
    [
        ("1,2,3\n4,5\n", ".csv", "line 2: 2 values where earlier lines have 3"),
        ("1,2,3\n4,x,6\n", ".csv", "line 2, column 2: 'x' is not a number"),
        ("", ".csv", "empty file"),
        ("1 2\n", ".bin", "unknown format .bin"),
    ],
)
def test_bad_files_give_one_line(tmp_path, content, suffix, message):
    bad = tmp_path / f"bad{suffix}"
    bad.write_text(content)
    good = tmp_path / "good.npy"
    np.save(good, np.eye(3) + 1)
    code, out, err = run_cli("score", bad, good)
    assert code == 2
    assert message in err and str(bad) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_values_give_one_line(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "short.npy", x[:7])
    x_nan = x.copy()
    x_nan[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", x_nan)
    cases = [
        (("short.npy",), "differ in number of rows: input (TMP/x.npy) has 8, target (TMP/short.npy) has 7"),
        (("nan.npy",), "row 4 has NaN or infinite values"),
        (("x.npy", "-k", "8"), "k=8 is too large for 8 items"),
    ]
    for extra, message in cases:
        args = ["score", tmp_path / "x.npy", tmp_path / extra[0], *extra[1:]]
        code, _, err = run_cli(*args)
        message = message.replace("TMP", str(tmp_path))
        assert code == 2 and message in err and "Traceback" not in err, err


def test_bench_reports_ratios_and_full_agreement_with_baselines():
    pytest.importorskip("sklearn")
    code, out, err = run_cli("bench", "--sizes", "1500x24", "--methods", "sklearn,torch", "--json")
    assert code == 0, err
    case = json.loads(out)["cases"][0]
    assert (case["n"], case["d"]) == (1500, 24)
    assert case["sklearn_set_agreement"] == 1.0  # same neighbour sets as scikit-learn's brute force
    assert case["ours_over_sklearn"] == pytest.approx(case["ours_s"] / case["sklearn_s"])
    assert case["ours_over_floor"] > 0 and case["torch_s"] > 0


def test_bench_prints_the_readmes_table():
    pytest.importorskip("sklearn")
    code, out, err = run_cli("bench", "--sizes", "800x16,1200x8", "--methods", "sklearn")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[:3] == ["N x d", "ours (s)", "scikit-learn (s)"] and "ours/sklearn" in head and set(lines[1]) <= set("|-")
    rows = [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    assert [r["N x d"] for r in rows] == ["800 x 16", "1,200 x 8"]
    for r in rows:  # the ratio column is the quotient of the two time columns, as printed
        assert float(r["ours/sklearn"]) == pytest.approx(float(r["ours (s)"]) / float(r["scikit-learn (s)"]), rel=0.05, abs=0.01)
        assert r["sklearn agrees"] == "100.0%"


def test_bench_rejects_unknown_method():
    code, _, err = run_cli("bench", "--sizes", "100x4", "--methods", "annoy")
    assert code == 2 and "unknown method 'annoy'" in err and "Traceback" not in err
