"""bridgeeval report / plot on a real small multirun: Table 1 cells, tests, LaTeX, figures."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ranksums

from bridgeeval.records import JobRecord
from bridgeeval.reports.collect import Job, collect_jobs
from bridgeeval.reports.table1 import build_table1, paper_table1

REPO = Path(__file__).resolve().parents[1]


def cli(*args):
    """The ``bridgeeval`` command in this process (its start-up would be most of each test's time)."""
    import contextlib
    import io

    from bridgeeval.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(map(str, args)))
    return code, out.getvalue(), err.getvalue()


# Session, not module: xdist may run another module's tests between these, which would tear
# a module fixture down and build it again.
@pytest.fixture(scope="session")
def multirun(tmp_path_factory) -> Path:
    """2 mappers x 2 folds, each fold its own job (as a multirun spreads folds over jobs)."""
    root = tmp_path_factory.mktemp("report")
    subprocess.run(
        [sys.executable, "train.py", "-m", "mapper=nn,lin", "cv.fold=0,1", "trainer.max_epochs=2",
         "trainer.enable_progress_bar=false", f"paths.log_dir={root}", f"hydra.sweep.dir={root}/multi",
         "metrics.on_train=true"],
        cwd=REPO, check=True, capture_output=True,
    )
    return root / "multi"


def job_metrics(folder: Path) -> dict[str, list[dict]]:
    by_mapper: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        by_mapper.setdefault(m["mapper"], []).append(m)
    return by_mapper


@pytest.mark.slow
def test_cells_are_the_means_of_the_jobs_and_p_values_are_bonferroni_ranksums(multirun):
    code, out, err = cli("report", multirun, "--format", "json")
    assert code == 0, err
    records = {r["mapper"]: r for r in json.loads(out)}
    by_mapper = job_metrics(multirun)
    assert set(records) == {"nn", "lin"} and all(len(v) == 2 for v in by_mapper.values())
    for mapper, jobs in by_mapper.items():
        x = [j["val/mnno_input_mapped"] for j in jobs]
        y = [j["val/mnno_target_mapped"] for j in jobs]
        r = records[mapper]
        assert r["mnno_input_mapped"] == pytest.approx(np.mean(x))
        assert r["mnno_target_mapped"] == pytest.approx(np.mean(y))
        assert r["mnno_input_mapped_std"] == pytest.approx(np.std(x, ddof=1))
        p = ranksums(x, y).pvalue
        assert r["p_ranksum"] == pytest.approx(p) and r["p_bonferroni"] == pytest.approx(min(1.0, 2 * p))
        # Over items (each job's items.npz): the paper's test, which can reach p < 0.001.
        folders = sorted(Path(j) for j in r["jobs"])
        items = [np.load(f / "items.npz") for f in folders]
        xi = np.concatenate([d[k] for d in items for k in d.files if k.endswith(".nno_input_mapped")])
        yi = np.concatenate([d[k] for d in items for k in d.files if k.endswith(".nno_target_mapped")])
        assert r["n_items"] == len(xi) == 256  # folds 0 and 1 of 5 over 639 items: 128 each
        assert xi.mean() == pytest.approx(np.mean(x), abs=1e-6)  # item means are the logged mNNO
        p_items = ranksums(xi, yi).pvalue
        assert r["p_items_ranksum"] == pytest.approx(p_items)
        assert r["p_items_bonferroni"] == pytest.approx(min(1.0, 2 * p_items))
        assert r["significant"] == (min(1.0, 2 * p_items) < 0.001)
        from scipy.stats import wilcoxon

        assert r["p_items_signed_rank"] == pytest.approx(wilcoxon(xi, yi).pvalue)
        low, high = r["ci95_input_mapped"]
        assert low < xi.mean() < high and high - low < 0.1
    assert "holds in all 2 cells" in err


@pytest.mark.slow
def test_markdown_bolds_the_larger_of_each_pair(multirun):
    code, out, _ = cli("report", multirun)
    assert code == 0
    records = {r["mapper"]: r for r in json.loads(cli("report", multirun, "--format", "json")[1])}
    for mapper, r in records.items():
        line = next(row for row in out.splitlines() if row.startswith(f"| imagenet1k text2image {mapper} |"))
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        larger = 0 if r["mnno_input_mapped"] > r["mnno_target_mapped"] else 1
        assert cells[larger].startswith("**") and not cells[1 - larger].startswith("**")
        assert cells[0].strip("*").startswith(f"{r['mnno_input_mapped']:.3f} ± ")


@pytest.mark.slow
def test_latex_is_a_well_formed_tabular_fragment_written_atomically(multirun, tmp_path):
    out = tmp_path / "table1.tex"
    code, _, err = cli("report", multirun, "--format", "latex", "--out", out)
    assert code == 0, err
    tex = out.read_text()
    lines = tex.strip().splitlines()
    assert lines[0] == r"\begin{tabular}{lcc}" and lines[-1] == r"\end{tabular}"
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    body = [line for line in lines if line.endswith(r"\\")]
    assert all(line.count("&") == 2 for line in body[1:])  # label + one column pair per row
    assert tex.count("{") == tex.count("}") and r"\textbf{" in tex and "$\\pm$" in tex
    assert not re.search(r"(?<!\\)[_%#]", tex.replace(r"\_", ""))  # specials escaped
    assert not list(tmp_path.glob(".*"))  # no temporary file left beside it


@pytest.mark.slow
def test_csv_has_one_line_per_cell_pair_with_statistics(multirun):
    code, out, _ = cli("report", multirun, "--format", "csv")
    rows = list(csv.DictReader(out.splitlines()))
    assert code == 0 and len(rows) == 2
    assert {"p_ranksum", "p_bonferroni", "mnno_input_mapped_std", "visual_features"} <= set(rows[0])


@pytest.mark.slow
def test_broken_job_folders_are_named_and_skipped(multirun, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(multirun, root)
    jobs = sorted(p.parent for p in root.glob("*/metrics.json"))
    (jobs[0] / "metrics.json").write_text("{not json")
    (jobs[1] / "metrics.json").unlink()
    code, out, err = cli("report", root, "--format", "json")
    assert code == 0
    assert f"{jobs[0]}/metrics.json: corrupt metrics.json" in err
    assert f"{jobs[1]}: no metrics.json" in err
    assert sum(r["n"] for r in json.loads(out)) == 2  # the two good jobs remain
    code, _, err = cli("report", tmp_path / "nowhere")
    assert code == 2 and f"{tmp_path / 'nowhere'}: no such file or folder" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("report", empty)
    assert code == 2 and "no finished job" in err and "Traceback" not in err


@pytest.mark.slow
def test_figures_are_real_png_and_pdf_files(multirun, tmp_path):
    job = sorted(multirun.glob("*/history.csv"))[0].parent
    code, _, err = cli("plot", job, "--out", tmp_path / "fig2.png")
    assert code == 0, err
    png, pdf = (tmp_path / "fig2.png").read_bytes(), (tmp_path / "fig2.pdf").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000 and pdf[:5] == b"%PDF-"
    code, _, err = cli("plot", multirun, "--out", tmp_path / "grid.png")
    assert code == 0, err
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "grid.png").stat().st_size > 20_000


def test_sweep_figure_is_one_file_of_finished_trials_and_varied_params(tmp_path):
    import optuna

    from bridgeeval.reports.figures import plot_study, study_figure

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db", study_name="q",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    objective = lambda t: (t.suggest_float("lr", 0, 1) - 0.3) ** 2 + t.suggest_int("h", 1, 4) / 10 + t.suggest_int("fixed", 3, 3)
    study.optimize(objective, n_trials=6)
    for _ in range(54):  # a grid's queue: trials waiting, never run
        study.enqueue_trial({"lr": 0.5, "h": 2, "fixed": 3})
    written = plot_study(study, tmp_path / "sweep.png")
    assert sorted(p.name for p in written) == ["sweep.pdf", "sweep.png"]  # what --out says, nothing else
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "sweep.png").stat().st_size > 10_000
    history, importance = study_figure(study).axes
    assert history.get_xlim() == (-0.5, 5.5)  # the 6 finished trials, not the 60 in the study
    best = history.lines[1].get_ydata()
    assert best[-1] == pytest.approx(study.best_value) and all(a >= b for a, b in zip(best, best[1:]))
    assert sorted(t.get_text() for t in importance.get_yticklabels()) == ["h", "lr"]  # "fixed" never varied


def test_curves_say_validation_for_folds_and_test_for_a_split():
    import matplotlib.pyplot as plt
    import pandas as pd

    from bridgeeval.reports.figures import draw_curves

    def labels(splits, baseline=None):
        rows = [{"split": s, "epoch": e, "val/mnno_input_mapped": 0.5, "val/mnno_target_mapped": 0.2, "val/loss": 1.0,
                 **({"val/mnno_input_target": baseline[i]} if baseline else {})}
                for i, s in enumerate(splits) for e in range(3)]
        fig, (left, right) = plt.subplots(1, 2)
        draw_curves(left, right, pd.DataFrame(rows))
        found = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
        flat = [line.get_ydata()[0] for line in left.lines if line.get_label().startswith("mNNO(X, Y)")]
        plt.close(fig)
        return found, flat

    assert labels(["fold0", "fold1"])[0] == ["mNNO(X, f(X)) validation (2 folds)",
                                             "mNNO(Y, f(X)) validation (2 folds)", "loss validation"]
    assert labels(["split"])[0] == ["mNNO(X, f(X)) test", "mNNO(Y, f(X)) test", "loss test"]
    # The baseline mNNO(X, Y): one flat line at its mean over the folds (0.25 and 0.35 here).
    found, flat = labels(["fold0", "fold1"], baseline=[0.25, 0.35])
    assert "mNNO(X, Y) validation (2 folds)" in found and flat == [pytest.approx(0.30)]


def test_package_copy_of_the_papers_table1_matches_the_reference(tmp_path):
    shared = REPO.parent / "shared" / "reference" / "paper_table1_mnno_cosine_k10_mse.csv"
    if not shared.is_file():
        pytest.skip("shared reference not available")
    rows = list(csv.DictReader(shared.read_text().splitlines()))
    ours = paper_table1()
    assert len(ours) == len(rows) == 24
    for r in rows:
        key = (r["dataset"], r["direction"], r["mapper"], r["visual_features"], r["text_features"])
        assert ours[key] == (float(r["mnno_input_mapped"]), float(r["mnno_target_mapped"]))


def _job(tmp_path, mapper, values, **extra) -> Job:
    meta = {"dataset": "iaprtc", "direction": "text2image", "mapper": mapper, "depth": 1, "loss": "mse", "k": 10,
            "neighbor_metric": "cosine", "status": "finished", "val/mnno_input_mapped": 0.0,
            "data": {"text_features": "bigru", "image_features": "vgg128"}, "seed": 0, "n_items": 100,
            "include_self": False, "protocol": "kfold"}
    meta.update(extra)
    meta["folds"] = [{"val/mnno_input_mapped": x, "val/mnno_target_mapped": y} for x, y in values]
    return Job(tmp_path / mapper, JobRecord.from_json(meta))


def test_paper_values_and_differences_appear_where_the_setting_matches(tmp_path):
    folds = [(0.40 + i / 100, 0.15 + i / 200) for i in range(5)]
    released = {"include_self": True, "protocol": "split"}  # an official test split: evaluated whole
    result = build_table1([_job(tmp_path, "lin", folds, **released),
                           _job(tmp_path, "nn", folds, loss="cosine", **released)])
    lin = next(c for c in result.comparisons if c.row["mapper"] == "lin")
    nn = next(c for c in result.comparisons if c.row["mapper"] == "nn")
    assert lin.paper == (0.419, 0.167)  # the paper's IAPR TC-12, VGG-128, text -> image, lin
    assert nn.paper is None  # cosine loss: not a published setting
    text = result.table.markdown()
    assert f"[paper 0.419, {lin.x_mean - 0.419:+.3f}]" in text and f"[paper 0.167, {lin.y_mean - 0.167:+.3f}]" in text
    # 5 vs 5 fully separated values: p = 0.0090 per test, x2 (Bonferroni) = 0.018
    assert lin.p == pytest.approx(ranksums([x for x, _ in folds], [y for _, y in folds]).pvalue)
    assert lin.p_adjusted == pytest.approx(2 * lin.p) and not lin.significant
    starred = build_table1([_job(tmp_path, "lin", folds, **released)], alpha=0.05)
    assert starred.comparisons[0].significant
    x_mean = starred.comparisons[0].x_mean
    # Bold around the number only and the star escaped: `**x***` would not render as meant.
    assert f"| **{x_mean:.3f} ± 0.016**\\* [paper 0.419," in starred.table.markdown()
    assert "over folds or seeds (1 test)," in starred.table.caption  # one test, not "1 tests"


def test_the_paper_is_compared_only_under_its_protocol(tmp_path):
    """Self counted and the whole set evaluated at once, as the released code does; never against
    values computed inside folds or with self left out."""
    folds = [(0.40 + i / 100, 0.15 + i / 200) for i in range(5)]
    pooled = {"pooled/mnno_input_mapped": 0.43, "pooled/mnno_target_mapped": 0.17}
    cases = [
        ({"include_self": False, "protocol": "split"}, "fold", False),
        ({"include_self": True, "protocol": "cv"}, "fold", False),  # inside folds: smaller sets
        ({"include_self": True, "protocol": "cv", **pooled}, "pooled", True),
        ({"include_self": False, "protocol": "cv", **pooled}, "pooled", False),
    ]
    for extra, evaluation, compared in cases:
        cell = build_table1([_job(tmp_path, "lin", folds, **extra)], evaluation=evaluation).comparisons[0]
        assert (cell.paper is not None) == compared, (extra, evaluation)
        if evaluation == "pooled":
            assert cell.x == [0.43] and cell.y == [0.17]  # one pooled value per job, not the folds


def test_collect_skips_experiment2_folders_silently(tmp_path):
    (tmp_path / "u" / ".hydra").mkdir(parents=True)
    (tmp_path / "u" / ".hydra" / "config.yaml").write_text("{}")
    (tmp_path / "u" / "untrained.json").write_text("{}")
    jobs, problems = collect_jobs([tmp_path])
    assert jobs == [] and problems == []


def test_report_takes_the_pooled_evaluation_when_every_job_ran_with_it(tmp_path):
    """`--evaluation auto` (the default): pooled when every job ran with cv.evaluate=pooled."""
    folds = [(0.40 + i / 100, 0.15 + i / 200) for i in range(5)]
    pooled = {"pooled/mnno_input_mapped": 0.43, "pooled/mnno_target_mapped": 0.17, "protocol": "cv"}
    for name, evaluate in (("a", "pooled"), ("b", "fold")):
        job = _job(tmp_path, name, folds, evaluate=evaluate, **pooled)
        job.path.mkdir()
        (job.path / "metrics.json").write_text(json.dumps(job.record.to_json()))
    code, out, err = cli("report", tmp_path / "a", "--format", "json")
    assert code == 0, err
    (cell,) = json.loads(out)
    assert cell["evaluation"] == "pooled" and cell["mnno_input_mapped"] == 0.43  # the one pooled value
    code, out, err = cli("report", tmp_path / "a", tmp_path / "b", "--format", "json")
    assert code == 0, err
    assert {c["evaluation"] for c in json.loads(out)} == {"fold"}  # mixed: each fold's values
    code, out, _ = cli("report", tmp_path / "a")
    assert "pooled: each job's out-of-fold f(X)" in out
