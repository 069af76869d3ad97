"""Experiment 2: untrained maps on word-similarity benchmarks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from conftest import shared_file
from wandb_records import run_contents

from bridgeeval.data.builtin import glove50
from bridgeeval.data.wordsim import Benchmark, gensim_benchmark, read_benchmark
from bridgeeval.errors import BridgeEvalError
from bridgeeval.untrained.experiment import (
    add_significance,
    covered_pairs,
    evaluate_embedding,
    spearman,
    table2,
    untrained_map,
)

REPO = Path(__file__).resolve().parents[1]

# The paper's untrained maps (conf/untrained.yaml's map.*).
PAPER_MAP = {"output_dim": 2048, "hidden_units": 2048, "init_range": 0.05}


def test_spearman_is_pearson_of_ranks():
    scores = np.array([1.0, 2.0, 2.0, 5.0, 3.0, 9.0])
    predicted = np.array([0.1, 0.4, 0.3, 0.2, 0.9, 0.8])
    ranks_a, ranks_b = scipy.stats.rankdata(scores), scipy.stats.rankdata(predicted)
    assert spearman(scores, predicted) == pytest.approx(np.corrcoef(ranks_a, ranks_b)[0, 1])


def test_rank_sum_against_input_with_bonferroni():
    draws = [0.60, 0.61, 0.59, 0.62, 0.60, 0.58, 0.61, 0.60, 0.59, 0.61]
    records = [
        {"embedding": "e", "mapping": "none", "benchmark": "b", "similarity": "cosine", "spearman_mean": 0.70,
         "spearman_draws": [0.70]},
        {"embedding": "e", "mapping": "nn", "benchmark": "b", "similarity": "cosine", "spearman_mean": 0.60,
         "spearman_draws": draws},
        {"embedding": "e", "mapping": "lin", "benchmark": "b", "similarity": "cosine", "spearman_mean": 0.70,
         "spearman_draws": [0.70] * 10},
    ]
    add_significance(records, alpha=0.05)
    raw = scipy.stats.ranksums(draws, [0.70] * 10).pvalue
    assert records[1]["p_value"] == pytest.approx(min(1.0, 2 * raw))  # two tests in the table
    assert records[1]["significant"] and not records[2]["significant"]
    assert records[0]["p_value"] is None


def test_coverage_counts_only_known_pairs():
    bench = Benchmark("t", [("cat", "dog"), ("cat", "zzzunknown"), ("dog", "car"), ("qqq", "car")], np.arange(4.0), "x")
    left, right, scores = covered_pairs(bench, {"cat": 0, "dog": 1, "car": 2})
    assert left.tolist() == [0, 1] and right.tolist() == [1, 2] and scores.tolist() == [0.0, 2.0]


def test_too_few_pairs_leave_the_benchmark_out():
    vectors = np.random.default_rng(0).normal(size=(3, 4))
    bench = Benchmark("t", [("a", "b"), ("b", "c")], np.array([1.0, 2.0]), "x")
    assert evaluate_embedding("e", vectors, {"a": 0, "b": 1, "c": 2}, [bench], [0], min_pairs=3, **PAPER_MAP) == []


def test_untrained_maps_are_uniform_with_zero_biases():
    net = untrained_map("nn", 50, 2048, 2048, init_range=0.05, seed=3)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(2048, 50), (2048, 2048)]
    assert isinstance(net[1], torch.nn.Tanh)
    for layer in linears:
        w = layer.weight.detach().flatten().numpy()
        assert np.all(layer.bias.detach().numpy() == 0.0)
        assert w.min() >= -0.05 and w.max() <= 0.05
        # Uniform on [-0.05, 0.05]: the Kolmogorov-Smirnov test does not reject.
        assert scipy.stats.kstest(w[:20000], scipy.stats.uniform(loc=-0.05, scale=0.1).cdf).pvalue > 1e-3
    again = untrained_map("nn", 50, 2048, 2048, init_range=0.05, seed=3)
    assert torch.equal(net[0].weight, again[0].weight)


def test_glove50_on_real_gensim_benchmarks_matches_published_figures():
    vectors, vocab = glove50()
    benches = [gensim_benchmark("ws353"), gensim_benchmark("simlex")]
    records = evaluate_embedding("glove50", vectors, vocab, benches, seeds=list(range(3)), mappings=("none", "lin"),
                                 min_pairs=10, **PAPER_MAP)
    got = {(r["benchmark"], r["mapping"], r["similarity"]): r for r in records}
    assert got[("ws353", "none", "cosine")]["spearman_mean"] == pytest.approx(0.50, abs=0.005)
    assert got[("simlex", "none", "cosine")]["spearman_mean"] == pytest.approx(0.26, abs=0.006)
    assert got[("ws353", "none", "cosine")]["n_pairs"] == 353
    # The paper's finding: the untrained map stays within a few hundredths of its input.
    for bench in ("ws353", "simlex"):
        gap = got[(bench, "lin", "cosine")]["spearman_mean"] - got[(bench, "none", "cosine")]["spearman_mean"]
        assert abs(gap) < 0.03


def test_table2_bold_is_best_per_embedding():
    records = [
        {"embedding": "g", "mapping": m, "benchmark": "ws", "similarity": "cosine", "spearman_mean": v,
         "significant": m == "nn"}
        for m, v in (("nn", 0.4), ("lin", 0.6), ("none", 0.5))
    ]
    table = table2(records)
    assert [label for label, _ in table.rows][:3] == ["f_nn(g)", "f_lin(g)", "g"]
    assert [cells[0].bold for _, cells in table.rows][:3] == [False, True, False]
    md = table.markdown()
    assert "| f_lin(g) | **0.600** |" in md and "0.400\\*" in md
    assert "\\textbf{0.600}" in table.latex() and table.csv().startswith("mapping,ws cos")


def test_table2_shows_the_papers_rows_for_the_same_columns():
    """The paper's Table 2 (package data) under ours, matched by benchmark and similarity."""
    records = [{"embedding": "glove50", "mapping": "none", "benchmark": b, "similarity": s, "spearman_mean": 0.5,
                "significant": False} for b in ("ws353", "simlex") for s in ("cosine", "euclidean")]
    rows = dict(table2(records).rows)
    # glove,none: ws353 0.632 (cos), 0.601 (eucl); the published simlex values follow in the same order
    assert [c.value for c in rows["paper: glove"][:2]] == [0.632, 0.601]
    assert rows["paper: f_a(glove)"][0].value == 0.632 and "paper: resnet" in rows
    no_columns = [{**records[0], "benchmark": "mine"}]
    assert [label for label, _ in table2(no_columns).rows] == ["glove50"]  # no published column: no paper rows


def test_malformed_benchmark_line_is_named(tmp_path):
    bad = tmp_path / "bench.txt"
    bad.write_text("cat\tdog\t5.0\n# a comment\ncar\ttrain\n")
    with pytest.raises(BridgeEvalError, match=r"bench.txt, line 3: expected word1, word2 and a score"):
        read_benchmark(bad)
    bad.write_text("cat\tdog\tfive\n")
    with pytest.raises(BridgeEvalError, match=r"line 1: score 'five' is not a number"):
        read_benchmark(bad)


@pytest.mark.slow
def test_untrained_task_end_to_end(tmp_path):
    men = shared_file("wordsim", "EN-MEN-TR-3k.txt")
    proc = subprocess.run(
        [sys.executable, "untrained.py", f"benchmarks.men={men}", "draws=3", "logger=wandb", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # one W&B run typed "untrained", as train.py's jobs are: one line on the terminal, none of wandb's own
    said = (proc.stdout + proc.stderr).splitlines()
    assert not [line for line in said if line.startswith("wandb:")]
    assert len([line for line in said if "W&B offline (WANDB_MODE=offline)" in line]) == 1
    # Minutes of work are not silent: each embedding's steps are said as they start.
    for step in ("embedding glove50 (1 of 2): loading", "glove50: 400000 words x 50 dims in",
                 "mapping the benchmarks' words by nn, lin, none, 3 draws each", "glove50: measuring how much of X",
                 "glove50 done in", "embedding efficientnet_lite0 (2 of 2): loading"):
        assert any(step in line for line in said), step
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/*.wandb")
    assert run_contents(run_file)["job_type"] == "untrained"
    records = json.loads((tmp_path / "untrained.json").read_text())
    fields = {"embedding", "mapping", "benchmark", "similarity", "spearman_mean", "spearman_std", "n_pairs",
              "p_value", "significant"}
    assert all(fields <= set(r) for r in records)
    men_cos = next(r for r in records if (r["embedding"], r["mapping"], r["benchmark"], r["similarity"])
                   == ("glove50", "none", "men", "cosine"))
    assert men_cos["spearman_mean"] == pytest.approx(0.65, abs=0.01) and men_cos["n_pairs"] == 3000
    for suffix in ("md", "csv", "tex"):
        assert (tmp_path / f"table2.{suffix}").stat().st_size > 100


@pytest.mark.parametrize("text, message", [
    ("", "empty embedding file (no word vectors)"),
    ("  \n\n", "empty embedding file (no word vectors)"),
    ("3 4\n", "not a word2vec/GloVe vector file"),
    ("cat 1 2 x\n", "not a word2vec/GloVe vector file"),
])
def test_an_embedding_file_without_vectors_is_one_line(tmp_path, text, message):
    from bridgeeval.errors import BridgeEvalError
    from bridgeeval.untrained.run import load_embedding

    (tmp_path / "vectors.txt").write_text(text)
    with pytest.raises(BridgeEvalError) as err:
        load_embedding("mine", str(tmp_path / "vectors.txt"))
    assert str(err.value).startswith(f"{tmp_path / 'vectors.txt'}: {message}")
