"""The alignment measures where a user looks: the validation hook every epoch, the pooled
evaluation, `bridgeeval score --measures`, `bridgeeval report --measures` and Experiment 2."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from bridgeeval.bench import malloc_trim
from bridgeeval.cli import main
from bridgeeval.data.datasets import load_paired
from bridgeeval.metrics.measures import measure
from bridgeeval.metrics.torchmetric import CrossModalReport
from bridgeeval.training import train
from test_train import make_cfg

HOOK_MEASURES = ["mnno", "cka", "cknna", "rsa", "procrustes", "lcs_knn", "gulp", "jaccard_knn", "magnitude_difference"]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_torchmetric_adds_the_measures_to_the_report():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(80, 6, generator=g), torch.randn(80, 9, generator=g)
    f = x @ torch.randn(6, 9, generator=g)
    metric = CrossModalReport(k=5, measures=["mnno", "cka", "rsa"])
    for part in torch.arange(80).split(30):
        metric.update(x[part], y[part], f[part], part)
    report = metric.compute()
    assert report["cka_input_mapped"] == pytest.approx(measure("cka", x, f))
    assert report["rsa_target_mapped"] == pytest.approx(measure("rsa", y, f))
    assert report["cka_input_target"] == pytest.approx(measure("cka", x, y))
    assert "mnno_input_mapped" in report and "mnno_mnno_input_mapped" not in report
    assert not CrossModalReport(k=5).alignment  # the default adds nothing to the hook


@pytest.mark.slow
def test_hook_logs_every_measure_every_epoch_and_the_pooled_values(tmp_path):
    measures = "[" + ",".join(HOOK_MEASURES) + "]"
    cfg = make_cfg(tmp_path, f"metrics.measures={measures}", "trainer.max_epochs=2", "cv.evaluate=pooled",
                   "dataset.limit=240")
    summary = train(cfg)
    keys = [f"{stage}/{m}_{pair}" for stage in ("val", "pooled") for m in HOOK_MEASURES if m != "mnno"
            for pair in ("input_mapped", "target_mapped", "input_target")]
    assert all(k in summary for k in keys), [k for k in keys if k not in summary]
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    fold_rows = [r for r in rows if r["split"] == "fold0"]
    pooled_rows = [r for r in rows if r["split"] == "pooled"]
    assert len(fold_rows) == 2 and len(pooled_rows) == 2
    assert all(r["val/cka_input_mapped"] for r in fold_rows)
    # (X, Y) never changes: one value every epoch, and over the whole set it is the measure itself.
    assert fold_rows[0]["val/cka_input_target"] == fold_rows[1]["val/cka_input_target"]
    data = load_paired({"name": "imagenet1k", "limit": 240}, {"text": None, "image": None}, "text2image")
    x, y = torch.from_numpy(data.input).float(), torch.from_numpy(data.target).float()
    for name in ("cka", "rsa", "cknna", "procrustes"):
        assert summary[f"pooled/{name}_input_target"] == pytest.approx(measure(name, x, y, k=10), abs=1e-6), name
    # The headline mNNO keys are unchanged by the measures.
    assert {"val/mnno_input_mapped", "val/mnno_target_mapped", "val/mnno_input_target"} <= set(summary)


def _write_pair(tmp_path, n=120):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6))
    y = x @ rng.normal(size=(6, 8)) + rng.normal(size=(n, 8))
    f = x @ rng.normal(size=(6, 8))
    for name, v in (("x", x), ("y", y), ("f", f)):
        np.save(tmp_path / f"{name}.npy", v)
    return x, y, f


def test_score_measures_json_for_two_and_three_files(tmp_path, capsys):
    x, y, f = _write_pair(tmp_path)
    code, out, err = cli(capsys, "score", tmp_path / "x.npy", tmp_path / "y.npy", "--measures", "mnno,cka,rsa", "--json",
                         "-k", "5")
    assert code == 0, err
    two = json.loads(out)
    assert two["cka"] == pytest.approx(measure("cka", x, y)) and two["mnno"] == pytest.approx(measure("mnno", x, y, k=5))
    assert two["rsa"] == pytest.approx(measure("rsa", x, y)) and two["n"] == 120
    code, out, err = cli(capsys, "score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "f.npy", "--measures",
                         "cka,procrustes", "--json")
    assert code == 0, err
    three = json.loads(out)
    assert set(three) >= {"input_target", "input_mapped", "target_mapped"}
    assert three["input_mapped"]["cka"] == pytest.approx(measure("cka", x, f))
    assert three["target_mapped"]["procrustes"] == pytest.approx(measure("procrustes", y, f))
    code, out, err = cli(capsys, "score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "f.npy", "--measures", "all")
    assert code == 0, err
    assert "(Y, f(X))" in out and "procrustes (lower: closer)" in out and "unbiased_cka_rbf" in out


@pytest.mark.parametrize("args,message", [
    (("--measures", "mnno,ckka"), "unknown measure 'ckka'; choose from mnno"),
    (("--measures", "cka", "--sample", "10"), "--sample estimates mNNO alone"),
    (("--measures", "cka_rbf", "--rbf-sigma", "-2"), "rbf_sigma=-2.0: must be a positive number"),
])
def test_score_measures_bad_options_are_one_line(tmp_path, capsys, args, message):
    _write_pair(tmp_path)
    code, _, err = cli(capsys, "score", tmp_path / "x.npy", tmp_path / "y.npy", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("override,message", [
    ("metrics.measures=[mnno,ckka]", "metrics.measures: unknown 'ckka'"),
    ("metrics.measures=[]", "metrics.measures=[]: name at least one"),
    ("+metrics.measure_options.rbf_sigma=-1", "metrics.measure_options.rbf_sigma=-1"),
    ("+metrics.measure_options.gulp_lambda=-0.5", "metrics.measure_options.gulp_lambda=-0.5: must be a finite"),
    ("+metrics.measure_options.sigma=1", "metrics.measure_options.unknown measure option 'sigma'"),
])
def test_bad_measure_configs_fail_before_training(tmp_path, override, message):
    from bridgeeval.errors import BridgeEvalError

    with pytest.raises(BridgeEvalError, match=None) as err:
        train(make_cfg(tmp_path, override))
    assert message in str(err.value) and not (tmp_path / "metrics.json").exists()


def test_a_measure_that_cannot_apply_stops_the_job_before_training(tmp_path):
    """svcca needs cca_dim dimensions: the built-in text vectors have 50, so cca_dim=60 is refused
    after the data loads and before any epoch (no history, no record)."""
    from bridgeeval.errors import BridgeEvalError

    cfg = make_cfg(tmp_path, "metrics.measures=[mnno,svcca]", "+metrics.measure_options.cca_dim=60")
    with pytest.raises(BridgeEvalError, match="measure svcca: cca_dim=60 needs .* the sets have 50 dimensions"):
        train(cfg)
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_report_shows_the_chosen_measures(tmp_path, capsys):
    cfg = make_cfg(tmp_path / "job", "metrics.measures=[mnno,cka,procrustes]", "dataset.limit=200")
    summary = train(cfg)
    code, out, err = cli(capsys, "report", tmp_path / "job", "--measures", "cka,procrustes,svcca", "--format", "json")
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["cka_input_mapped"] == pytest.approx(summary["val/cka_input_mapped"])
    assert record["procrustes_target_mapped"] == pytest.approx(summary["val/procrustes_target_mapped"])
    lower_is_closer = summary["val/procrustes_input_mapped"] < summary["val/procrustes_target_mapped"]
    assert record["procrustes_input_closer"] is lower_is_closer
    assert record["svcca_input_mapped"] is None
    assert "no job logged svcca" in err
    code, out, err = cli(capsys, "report", tmp_path / "job", "--measures", "cka")
    assert code == 0 and "cka(X,f(X))" in out and "cka(Y,f(X))" in out


def test_untrained_structure_records_are_the_measures_of_each_draw():
    from bridgeeval.data.wordsim import gensim_benchmark
    from bridgeeval.untrained.experiment import map_words, structure_kept, structure_table

    rng = np.random.default_rng(0)
    bench = gensim_benchmark("ws353")
    words = sorted({w for pair in bench.pairs for w in pair})
    vocab = {w: i for i, w in enumerate(words)}
    vectors = rng.normal(size=(len(words), 20)).astype(np.float32)
    settings = {"output_dim": 64, "hidden_units": 32, "init_range": 0.05, "min_pairs": 10, "mappings": ("nn", "lin", "none")}
    words = map_words("e", vectors, vocab, [bench], [0, 1], **settings)
    records = structure_kept(words, ("mnno", "cka"), k=5, metric="cosine")
    assert {(r["mapping"], r["measure"]) for r in records} == {(m, n) for m in ("nn", "lin") for n in ("mnno", "cka")}
    # The maps rebuilt independently from their seeds (untrained_map), not taken from `words`.
    from bridgeeval.untrained.experiment import untrained_map

    x = words.inputs
    lin = [untrained_map("lin", x.shape[1], 64, 32, 0.05, seed)(x).detach() for seed in (0, 1)]
    lin_cka = next(r for r in records if r["mapping"] == "lin" and r["measure"] == "cka")
    assert lin_cka["draws"] == pytest.approx([measure("cka", x, v) for v in lin])
    table = structure_table(records)
    assert [label for label, _ in table.rows] == ["f_nn(e)", "f_lin(e)"]


def test_bench_measures_prints_agreeing_values_and_the_family_row(capsys):
    code, out, err = cli(capsys, "bench", "--measures", "mnno,cycle_knn,cka,svcca,rsa", "--sizes", "300x16")
    assert code == 0, err
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")]
    head, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    by = {(r[col["measure"]], r[col["reference"]]): r for r in body}
    exact_svcca = "platonic-rep's form, exact SVD"  # not its own code, which is randomised
    for name, label in (("mnno", "platonic-rep"), ("cycle_knn", "platonic-rep"), ("cka", "platonic-rep"),
                        ("svcca", exact_svcca)):
        r = by[(name, label)]
        assert float(r[col["ours"]]) == pytest.approx(float(r[col["reference value"]]), abs=2e-6), name
    assert ("svcca", "platonic-rep svd_lowrank") in by and ("rsa", "scipy") in by
    family = next(r for (m, _), r in by.items() if m.startswith("k-NN family, one search (mnno, cycle_knn)"))
    assert family[col["reference"]] == "platonic-rep, each alone"
    assert float(family[col["reference (s)"]]) == pytest.approx(
        float(by[("mnno", "platonic-rep")][col["reference (s)"]]) + float(by[("cycle_knn", "platonic-rep")][col["reference (s)"]]),
        abs=0.02)


@pytest.mark.skipif(malloc_trim() is None, reason="glibc's allocator: the trim and what it fixes are its own")
def test_bench_peak_memory_counts_pages_that_freed_heap_memory_would_have_hidden():
    """The bench's peak extra memory after earlier calls freed theirs (each measure follows others):
    a call that touches 40 MiB must read about 40 MiB, not the 0 it read when glibc kept the pages
    it had freed resident (below its trim threshold, 48 MiB once a 24 MiB block was freed) and
    handed them out again."""
    from bridgeeval.bench import PeakRSS
    from bridgeeval.bench.measures import PeakMemory

    def touch(mib: int) -> float:
        blocks = [torch.ones(1 << 21) for _ in range(mib // 8)]  # 8 MiB each
        return float(sum(b[0] for b in blocks))

    for meter in (PeakMemory, PeakRSS):
        torch.ones(6 << 20)  # a freed 24 MiB block raises glibc's mmap threshold: 8 MiB blocks use the heap
        touch(40)  # heap pages freed, still resident without the trim
        with meter() as mem:
            touch(40)
        assert mem.extra >= 32 * 2**20, (meter.__name__, mem.extra / 2**20)
