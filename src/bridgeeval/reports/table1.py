"""The paper's Table 1 from finished jobs: mNNO(X, f(X)) against mNNO(Y, f(X)), with rank-sum tests.

One row per data set x text features x direction x mapper (and depth, loss, k and neighbour metric
when they vary among the jobs); one column pair per visual feature. Each cell pools the per-fold
(k-fold CV) or per-seed (repeated runs on a split) values of every job in it.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from scipy.stats import ranksums

from bridgeeval.reports.collect import Job
from bridgeeval.reports.tables import Cell, Table

INPUT_MAPPED, TARGET_MAPPED = "val/mnno_input_mapped", "val/mnno_target_mapped"
ROW_KEYS = ("dataset", "text_features", "direction", "mapper", "depth", "loss", "k", "neighbor_metric")
ALWAYS_SHOWN = ("dataset", "direction", "mapper")


@dataclass
class Comparison:
    """One cell pair: the pooled samples, their summary, the test and the paper's figures."""

    row: dict
    visual: str
    x: list[float]  # mNNO(X, f(X)) samples
    y: list[float]  # mNNO(Y, f(X)) samples
    jobs: list[str] = field(default_factory=list)
    p: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    paper: tuple[float, float] | None = None

    @property
    def x_mean(self) -> float:
        return float(np.mean(self.x))

    @property
    def y_mean(self) -> float:
        return float(np.mean(self.y))

    def std(self, values: list[float]) -> float | None:
        return float(np.std(values, ddof=1)) if len(values) > 1 else None

    def record(self) -> dict:
        out = {**self.row, "visual_features": self.visual, "n": len(self.x)}
        out.update(
            {
                "mnno_input_mapped": self.x_mean,
                "mnno_input_mapped_std": self.std(self.x),
                "mnno_target_mapped": self.y_mean,
                "mnno_target_mapped_std": self.std(self.y),
                "p_ranksum": self.p,
                "p_bonferroni": self.p_adjusted,
                "significant": self.significant,
                "input_closer": self.x_mean > self.y_mean,
                "paper_mnno_input_mapped": self.paper[0] if self.paper else None,
                "paper_mnno_target_mapped": self.paper[1] if self.paper else None,
                "jobs": self.jobs,
            }
        )
        return out


@dataclass
class Table1:
    comparisons: list[Comparison]
    table: Table
    alpha: float

    def records(self) -> list[dict]:
        return [c.record() for c in self.comparisons]

    def finding_holds(self) -> bool:
        """The paper's finding, mNNO(X, f(X)) > mNNO(Y, f(X)), in every cell."""
        return all(c.x_mean > c.y_mean for c in self.comparisons)


def build_table1(jobs: list[Job], alpha: float = 0.001, with_paper: bool = True) -> Table1:
    comparisons = _compare(jobs)
    _test(comparisons, alpha)
    if with_paper:
        _attach_paper(comparisons)
    return Table1(comparisons, _layout(comparisons, alpha), alpha)


def _row_of(job: Job) -> dict:
    m = job.metrics
    data = m.get("data") or {}
    return {
        "dataset": m.get("dataset"),
        "text_features": data.get("text_features"),
        "direction": m.get("direction"),
        "mapper": m.get("mapper"),
        "depth": m.get("depth"),
        "loss": m.get("loss"),
        "k": m.get("k"),
        "neighbor_metric": m.get("neighbor_metric"),
    }


def _compare(jobs: list[Job]) -> list[Comparison]:
    cells: dict[tuple, Comparison] = {}
    for job in jobs:
        row = _row_of(job)
        visual = (job.metrics.get("data") or {}).get("image_features") or "-"
        key = (tuple(row[k] for k in ROW_KEYS), visual)
        cell = cells.setdefault(key, Comparison(row, visual, [], []))
        xs, ys = job.samples(INPUT_MAPPED), job.samples(TARGET_MAPPED)
        n = min(len(xs), len(ys))
        cell.x += xs[:n]
        cell.y += ys[:n]
        cell.jobs.append(str(job.path))
    return [cells[k] for k in sorted(cells, key=lambda k: tuple(map(str, k[0])) + (k[1],))]


def _test(comparisons: list[Comparison], alpha: float) -> None:
    """Two-sided Wilcoxon rank-sum per cell pair, Bonferroni over the table's tests."""
    testable = [c for c in comparisons if len(c.x) >= 2 and len(c.y) >= 2]
    for c in testable:
        c.p = float(ranksums(c.x, c.y).pvalue)
        c.p_adjusted = min(1.0, c.p * len(testable))
        c.significant = c.p_adjusted < alpha


def paper_table1() -> dict[tuple, tuple[float, float]]:
    """The paper's Table 1 (package data), keyed by (dataset, direction, mapper, visual, text)."""
    text = resources.files("bridgeeval.reports").joinpath("reference/paper_table1.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {
        (r["dataset"], r["direction"], r["mapper"], r["visual_features"], r["text_features"]): (
            float(r["mnno_input_mapped"]),
            float(r["mnno_target_mapped"]),
        )
        for r in rows
    }


def _attach_paper(comparisons: list[Comparison]) -> None:
    """Only settings the paper published: MSE, one hidden layer (nn), K = 10, cosine, self excluded."""
    reference = paper_table1()
    for c in comparisons:
        r = c.row
        if r["loss"] != "mse" or r["depth"] not in (1, None) or r["k"] != 10 or r["neighbor_metric"] != "cosine":
            continue
        c.paper = reference.get((r["dataset"], r["direction"], r["mapper"], c.visual, r["text_features"]))


def _label(row: dict, shown: list[str]) -> str:
    parts = []
    for key in shown:
        value = row[key]
        if key == "depth" and row["mapper"] == "lin":
            continue
        parts.append({"depth": f"depth {value}", "k": f"K={value}", "loss": f"{value} loss"}.get(key, str(value)))
    return " ".join(parts)


def _layout(comparisons: list[Comparison], alpha: float) -> Table:
    varying = [k for k in ROW_KEYS if len({c.row[k] for c in comparisons}) > 1]
    shown = [k for k in ROW_KEYS if k in ALWAYS_SHOWN or k in varying]
    visuals = sorted({c.visual for c in comparisons})
    by_row: dict[str, dict[str, Comparison]] = defaultdict(dict)
    for c in comparisons:
        by_row[_label(c.row, shown)][c.visual] = c
    rows = [(label, [cell for v in visuals for cell in _cells(cells.get(v))]) for label, cells in by_row.items()]
    caption = (
        f"mean ± std over folds or seeds; bold: the larger of the pair; * the pair differs (two-sided "
        f"Wilcoxon rank-sum, Bonferroni over {sum(c.p is not None for c in comparisons)} tests, p < {alpha})"
    )
    if any(c.paper for c in comparisons):
        caption += "; [paper: Collell & Moens (2018) Table 1, and our difference]"
    return Table("setting", visuals, ["mNNO(X,f(X))", "mNNO(Y,f(X))"], rows, caption)


def _cells(c: Comparison | None) -> list[Cell]:
    if c is None:
        return [Cell(None), Cell(None)]
    mark = "*" if c.significant else ""
    x_wins = c.x_mean >= c.y_mean
    notes = ("", "")
    if c.paper:
        notes = tuple(f" [paper {p:.3f}, {ours - p:+.3f}]" for p, ours in zip(c.paper, (c.x_mean, c.y_mean)))
    return [
        Cell(c.x_mean, c.std(c.x), bold=x_wins, mark=mark if x_wins else "", note=notes[0]),
        Cell(c.y_mean, c.std(c.y), bold=not x_wins, mark="" if x_wins else mark, note=notes[1]),
    ]
