"""Experiment 2: do untrained mappings preserve the semantic structure of their input?

For an embedding X and word-similarity benchmarks, the Spearman correlation between human ratings
and the similarities predicted by X itself (``none``), by an untrained linear map f_lin(X) and by an
untrained one-hidden-layer net f_nn(X): weights uniform in [-r, r], biases zero, tanh, output
dimension 2,048, averaged over random draws; cosine and Euclidean (negative distance) similarity.

Statistics, exactly: for each (embedding, benchmark, similarity, mapping) cell, a two-sided Wilcoxon
rank-sum test between the mapping's correlations over the draws (one per seed) and the input
embedding's correlation repeated as many times (it does not vary across draws). The p-value is
Bonferroni-adjusted by the number of such tests in the table; ``significant`` is p_adj < alpha.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch
from torch import nn

from bridgeeval.data.wordsim import Benchmark
from bridgeeval.errors import BridgeEvalError
from bridgeeval.models.mappers import MAPPERS, UNTRAINED_MAPPINGS

log = logging.getLogger(__name__)
MAPPINGS = UNTRAINED_MAPPINGS
SIMILARITIES = ("cosine", "euclidean")


def untrained_map(kind: str, in_dim: int, out_dim: int, hidden_units: int, init_range: float, seed: int) -> nn.Module:
    """Training's own mapper (``lin``, or ``nn`` with one tanh hidden layer and no dropout), its
    weights ~ U(-init_range, init_range) from ``seed`` layer by layer, its biases zero."""
    cls = MAPPERS.get(kind)
    if cls is None:
        raise BridgeEvalError(f"untrained mapping: unknown {kind!r}; choose one of {', '.join(MAPPERS)}")
    hidden = {"depth": 1, "hidden_units": hidden_units, "activation": "tanh", "dropout": 0.0} if cls.has_depth else {}
    mapper = cls(in_dim, out_dim, **hidden)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in mapper.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.uniform_(-init_range, init_range, generator=generator)
                layer.bias.zero_()
    return mapper.eval()


def pair_similarities(vectors: torch.Tensor, left: torch.Tensor, right: torch.Tensor, similarity: str) -> np.ndarray:
    a, b = vectors[left].double(), vectors[right].double()
    if similarity == "cosine":
        return torch.nn.functional.cosine_similarity(a, b, dim=1).numpy()
    if similarity == "euclidean":
        return (-(a - b).norm(dim=1)).numpy()
    raise BridgeEvalError(f"similarity: unknown {similarity!r}; choose cosine or euclidean")


def covered_pairs(benchmark: Benchmark, vocabulary: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of both words of every pair the embedding knows, and those pairs' human scores."""
    keep = [i for i, (a, b) in enumerate(benchmark.pairs) if a in vocabulary and b in vocabulary]
    left = np.array([vocabulary[benchmark.pairs[i][0]] for i in keep], dtype=np.int64)
    right = np.array([vocabulary[benchmark.pairs[i][1]] for i in keep], dtype=np.int64)
    return left, right, benchmark.scores[keep]


def spearman(scores: np.ndarray, predicted: np.ndarray) -> float:
    return float(scipy.stats.spearmanr(scores, predicted).statistic)


def _usable_benchmarks(name: str, vocabulary: dict[str, int], benchmarks: list[Benchmark], min_pairs: int) -> list:
    """(benchmark, left rows, right rows, scores) of each benchmark with enough covered pairs."""
    usable = []
    for bench in benchmarks:
        left, right, scores = covered_pairs(bench, vocabulary)
        if len(scores) < min_pairs:
            log.warning(
                "%s: %s has only %d of %d pairs the embedding knows (< min_pairs=%d); left out",
                name,
                bench.name,
                len(scores),
                len(bench.pairs),
                min_pairs,
            )
            continue
        usable.append((bench, left, right, scores))
    return usable


@dataclass
class MappedWords:
    """An embedding's words that the usable benchmarks use, and their images under each mapping in
    ``mappings`` order, one per seed (``none``: the input vectors themselves): what Table 2 and
    structure.md share."""

    name: str
    usable: list  # (benchmark, left rows, right rows, scores)
    local: dict[int, int]  # embedding row -> row of the mapped sets
    inputs: torch.Tensor  # the words' own vectors, X
    mapped: dict[str, list[torch.Tensor]]


def map_words(
    name: str,
    vectors: np.ndarray,
    vocabulary: dict[str, int],
    benchmarks: list[Benchmark],
    seeds: list[int],
    *,
    output_dim: int,
    hidden_units: int,
    init_range: float,
    min_pairs: int,
    mappings: tuple[str, ...] = MAPPINGS,
) -> MappedWords | None:
    """The benchmarks' words mapped once by every mapping and seed; None where no benchmark has
    ``min_pairs`` covered pairs. The map settings come from ``conf/untrained.yaml`` (``map.*``)."""
    usable = _usable_benchmarks(name, vocabulary, benchmarks, min_pairs)
    if not usable:
        return None
    rows = np.unique(np.concatenate([np.concatenate([lt, rt]) for _, lt, rt, _ in usable]))
    x = torch.from_numpy(np.asarray(vectors[rows], dtype=np.float32))
    with torch.no_grad():
        mapped = {kind: [x] if kind == "none" else
                  [untrained_map(kind, x.shape[1], output_dim, hidden_units, init_range, s)(x) for s in seeds]
                  for kind in mappings}
    return MappedWords(name, usable, {int(r): i for i, r in enumerate(rows)}, x, mapped)


def evaluate_embedding(
    name: str,
    vectors: np.ndarray,
    vocabulary: dict[str, int],
    benchmarks: list[Benchmark],
    seeds: list[int],
    *,
    similarities: tuple[str, ...] = SIMILARITIES,
    **map_settings,
) -> list[dict]:
    """One record per (benchmark, similarity, mapping) cell, before the significance tests: the
    words mapped by :func:`map_words` (``map_settings`` are its keywords) and scored by
    :func:`spearman_records`."""
    words = map_words(name, vectors, vocabulary, benchmarks, seeds, **map_settings)
    return spearman_records(words, similarities) if words else []


def spearman_records(words: MappedWords, similarities: tuple[str, ...] = SIMILARITIES) -> list[dict]:
    """Table 2's cells of one embedding's mapped words."""
    records = []
    for bench, left, right, scores in words.usable:
        lt = torch.as_tensor([words.local[int(r)] for r in left])
        rt = torch.as_tensor([words.local[int(r)] for r in right])
        for similarity in similarities:
            for kind, draws in words.mapped.items():
                rhos = [spearman(scores, pair_similarities(v, lt, rt, similarity)) for v in draws]
                records.append(
                    {
                        "embedding": words.name,
                        "mapping": kind,
                        "benchmark": bench.name,
                        "similarity": similarity,
                        "spearman_mean": float(np.mean(rhos)),
                        "spearman_std": float(np.std(rhos, ddof=1)) if len(rhos) > 1 else 0.0,
                        "n_pairs": len(scores),
                        "n_pairs_total": len(bench.pairs),
                        "spearman_draws": rhos,
                    }
                )
    return records


def structure_kept(words: MappedWords, measures: tuple[str, ...], k: int, metric: str,
                   measure_options: dict | None = None) -> list[dict]:
    """How much of X's structure each untrained map keeps: every alignment measure between X and
    f(X) over the benchmarks' words, per draw (the same maps and words as Table 2's cells)."""
    from bridgeeval.metrics.measures import MEASURES, alignment_report
    from bridgeeval.metrics.representation import Representation

    kinds = [kind for kind in words.mapped if kind != "none"]
    if not kinds or not measures:
        return []
    x = Representation(words.inputs, metric=metric, name=f"{words.name} words")  # searched once
    if k >= x.n:
        raise BridgeEvalError(f"k={k}: the benchmarks cover only {x.n} words of {words.name}")
    records = []
    for kind in kinds:
        draws = [alignment_report({"input": x, "mapped": Representation(v, metric=metric, name=f"f_{kind}({words.name})")},
                                  measures, k, {"input_mapped": ("input", "mapped")}, measure_options)
                 for v in words.mapped[kind]]
        for measure_name in measures:
            values = [d[f"{measure_name}_input_mapped"] for d in draws]
            records.append({"embedding": words.name, "mapping": kind, "measure": measure_name,
                            "higher_is_better": MEASURES[measure_name].higher_is_better, "n_words": x.n,
                            "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                            "draws": values})
    return records


def structure_table(records: list[dict]):
    """Rows f_nn(X), f_lin(X) per embedding; one column per measure of (X, f(X)), mean ± std over draws."""
    from bridgeeval.tables import Cell, Table

    measures = list(dict.fromkeys(r["measure"] for r in records))
    index = {(r["embedding"], r["mapping"], r["measure"]): r for r in records}
    labels = {"nn": "f_nn({})", "lin": "f_lin({})"}
    rows = []
    for emb in dict.fromkeys(r["embedding"] for r in records):
        for kind in (m for m in MAPPINGS if m in labels):
            cells = [Cell(index[key]["mean"], index[key]["std"]) if (key := (emb, kind, m)) in index else Cell(None)
                     for m in measures]
            if any(c.value is not None for c in cells):
                rows.append((labels[kind].format(emb), cells))
    caption = ("How much of X's structure untrained maps keep: each measure between X and f(X) over the benchmarks' "
               "words (mean ± std over the same random draws as Table 2). 1 is all of it for every measure but "
               "procrustes, a distance (0 is all of it).")
    return Table("mapping", measures, ["(X, f(X))"], rows, caption)


def add_significance(records: list[dict], alpha: float) -> list[dict]:
    """Rank-sum test of each mapped cell against its input cell, Bonferroni over the table."""
    inputs = {(r["embedding"], r["benchmark"], r["similarity"]): r for r in records if r["mapping"] == "none"}
    tested = [r for r in records if r["mapping"] != "none"]
    for r in records:
        r["p_value"], r["significant"] = None, False
    for r in tested:
        base = inputs[(r["embedding"], r["benchmark"], r["similarity"])]["spearman_mean"]
        draws = r["spearman_draws"]
        raw = float(scipy.stats.ranksums(draws, [base] * len(draws)).pvalue)
        r["p_value"] = min(1.0, raw * len(tested))
        r["significant"] = bool(r["p_value"] < alpha)
    return records


def _paper_rows(benchmarks: list[str], sims: list[str]) -> list:
    """The paper's Table 2 rows over the same columns ('-' where it has no value)."""
    from bridgeeval.reference import paper_rows
    from bridgeeval.tables import Cell

    values = {(r["embedding"], r["mapping"], r["benchmark"], r["similarity"]): float(r["spearman"])
              for r in paper_rows("paper_table2")}
    labels = {"untrained_a": "paper: f_a({})", "untrained_b": "paper: f_b({})", "none": "paper: {}"}
    rows = []
    for emb in dict.fromkeys(key[0] for key in values):
        for kind, label in labels.items():
            cells = [Cell(values.get((emb, kind, bench, sim))) for bench in benchmarks for sim in sims]
            if any(c.value is not None for c in cells):
                rows.append((label.format(emb), cells))
    return rows


def table2(records: list[dict]):
    """The paper's Table 2 layout: rows f_nn(X), f_lin(X), X per embedding; benchmark x {cos, eucl}."""
    from bridgeeval.tables import Cell, Table

    benchmarks = list(dict.fromkeys(r["benchmark"] for r in records))
    sims = [s for s in SIMILARITIES if any(r["similarity"] == s for r in records)]
    embeddings = list(dict.fromkeys(r["embedding"] for r in records))
    index = {(r["embedding"], r["mapping"], r["benchmark"], r["similarity"]): r for r in records}
    labels = {"nn": "f_nn({})", "lin": "f_lin({})", "none": "{}"}
    rows = []
    for emb in embeddings:
        block = []
        for kind in MAPPINGS:
            if not any(key[:2] == (emb, kind) for key in index):
                continue
            cells = []
            for bench in benchmarks:
                for sim in sims:
                    r = index.get((emb, kind, bench, sim))
                    cells.append(
                        Cell(None) if r is None else Cell(r["spearman_mean"], mark="*" if r["significant"] else "")
                    )
            block.append((labels[kind].format(emb), cells))
        for col in range(len(benchmarks) * len(sims)):  # best per input embedding in bold
            values = [cells[col].value for _, cells in block if cells[col].value is not None]
            for _, cells in block:
                cells[col].bold = bool(values) and cells[col].value == max(values)
        rows += block
    rows += _paper_rows(benchmarks, sims)
    caption = (
        "Spearman correlation with human ratings (mean over random draws). Bold: best per input embedding. "
        "*: differs from the input embedding (two-sided Wilcoxon rank-sum, Bonferroni-adjusted, p < 0.05). "
        "paper: Collell & Moens (2018) Table 2 for these columns, on their GloVe and ResNet vectors (not the "
        "same vectors as above; the labels of their two untrained maps were lost in the text, hence a and b)."
    )
    short = {"cosine": "cos", "euclidean": "eucl"}
    return Table("mapping", benchmarks, [short[s] for s in sims], rows, caption)
