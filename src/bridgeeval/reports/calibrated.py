"""Each evaluated job's mNNOs against their permutation null, and its retrieval plain and
CSLS-corrected: the report's "how far above chance" and "how much of it is hubness" columns.

A job qualifies when it kept its mapped vectors: out-of-fold over all items (``mapped.npy``,
pooled evaluation) or on an official test split (``mapped_splits.npz``). Its data set is loaded
again from its config in the same row order, and the mNNOs recomputed from it must equal the
job's recorded values (to 1e-6), so that a changed data file is refused rather than calibrated.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.hub_retrieval import hub_retrieval
from bridgeeval.metrics.measures import PAIRS
from bridgeeval.metrics.null import permutation_nulls
from bridgeeval.metrics.representation import Representation
from bridgeeval.records import MAPPED_FILE, MAPPED_SPLITS_FILE
from bridgeeval.reports.collect import Job

SHOWN = (("input_mapped", "mNNO(X,f(X))"), ("target_mapped", "mNNO(Y,f(X))"), ("input_target", "mNNO(X,Y)"))


def job_sets(job: Job) -> dict[str, torch.Tensor] | None:
    """X, Y and f(X) of a job in the data's row order: all items with their pooled out-of-fold
    f(X) (``mapped.npy``), or an official split's test items (``mapped_splits.npz``); None
    where the job kept neither."""
    pooled, splits = job.path / MAPPED_FILE, job.path / MAPPED_SPLITS_FILE
    if pooled.is_file():
        index, mapped, source = None, np.load(pooled), pooled
    elif job.single_split and splits.is_file():
        with np.load(splits) as saved:
            index, mapped, source = saved["split.index"], saved["split.mapped"], splits
    else:
        return None
    data = _job_data(job)
    x, y = np.asarray(data.input), np.asarray(data.target)
    if index is not None:
        x, y = x[index], y[index]
    if mapped.shape != y.shape:
        raise BridgeEvalError(f"{source}: shape {mapped.shape}, but the job's data set has Y of shape {y.shape}")
    return {"input": torch.from_numpy(x), "target": torch.from_numpy(y), "mapped": torch.from_numpy(mapped)}


def _job_data(job: Job):
    from omegaconf import OmegaConf

    from bridgeeval.config.resolvers import register_resolvers
    from bridgeeval.data.datasets import load_paired

    register_resolvers()
    config = OmegaConf.load(job.path / ".hydra" / "config.yaml")
    dataset = OmegaConf.to_container(config.dataset, resolve=True)
    features = OmegaConf.to_container(config.features, resolve=True) if "features" in config else None
    return load_paired(dataset, features, str(config.direction))


def calibrated_rows(jobs: list[Job], permutations: int, alpha: float = 0.05, seed: int = 0) -> list[dict]:
    """One row per job with ``mapped.npy``: the three mNNOs with their nulls, and retrieval."""
    rows = []
    for job, tensors, sets in _kept(jobs):
        r = job.record
        row = {"job": str(job.path), "setting": _setting(job), "values": {}, "null": {}}
        for pair in PAIRS:
            observed = _observed(sets, pair, r.k)
            recorded = r.values.get(f"{'val' if job.single_split else 'pooled'}/mnno_{pair}")
            if isinstance(recorded, (int, float)) and not math.isclose(observed, recorded, abs_tol=1e-6):
                raise BridgeEvalError(f"{job.path}: mNNO {pair} from its data and mapped.npy is {observed:.6f}, its "
                                      f"metrics.json says {recorded:.6f}: the data set changed since the job ran")
            row["values"][f"mnno_{pair}"] = observed
        nulls = permutation_nulls(sets, ["mnno"], r.k, permutations=permutations, alpha=alpha, seed=seed,
                                  observed=row["values"])
        row["null"] = {key: None if null is None else null.as_dict() for key, null in nulls.items()}
        row["values"].update(hub_retrieval(tensors["mapped"], tensors["target"], r.k, r.neighbor_metric))
        rows.append(row)
    return rows


def _observed(sets: dict[str, Representation], pair: str, k: int) -> float:
    from bridgeeval.metrics.overlap import mnno_from_indices

    a, b = PAIRS[pair]
    return mnno_from_indices(sets[a].neighbours(k), sets[b].neighbours(k))


def calibrated_markdown(rows: list[dict]) -> str:
    """The rows as one table: each mNNO raw / calibrated (p), chance, and retrieval plain / CSLS."""
    head = ["setting", *[f"{label} raw / calibrated (p)" for _, label in SHOWN], "chance",
            "recall@k plain / CSLS", "target hubness plain / CSLS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["setting"]]
        for pair, _ in SHOWN:
            null = row["null"][f"mnno_{pair}"]
            raw = row["values"][f"mnno_{pair}"]
            cells.append(f"{raw:.3f}" if null is None else f"{raw:.3f} / {null['calibrated']:.3f} ({_p(null)})")
        chance = next((n["chance"] for n in row["null"].values() if n), None)
        v = row["values"]
        cells += ["-" if chance is None else f"{chance:.4f}", f"{v['recall_at_k']:.3f} / {v['recall_at_k_csls']:.3f}",
                  f"{v['target_hubness']:.2f} / {v['target_hubness_csls']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    permutations = next((n["permutations"] for row in rows for n in row["null"].values() if n), 0)
    alpha = next((n["alpha"] for row in rows for n in row["null"].values() if n), 0.05)
    return (f"Calibrated against a permutation null ({permutations} shuffles of the second set, alpha {alpha}; "
            "calibrated = (raw - tau) / (1 - tau), 0 at or below the null's threshold tau), and retrieval of each "
            "item's own target, plain and by CSLS\n\n" + "\n".join(lines) + "\n")


def _p(null: dict) -> str:
    floor = 1.0 / (null["permutations"] + 1)
    return f"p <= {floor:.4f}" if null["p_value"] <= floor else f"p = {null['p_value']:.4f}"




def interval_rows(jobs: list[Job], names: tuple[str, ...], resamples: int, level: float = 0.95,
                  seed: int = 0) -> list[dict]:
    """One row per job with its mapped vectors: each measure of ``names`` (mNNO first) for the
    three pairs, with its bootstrap interval over items (``metrics.bootstrap``)."""
    from bridgeeval.metrics.bootstrap import bootstrap_intervals
    from bridgeeval.metrics.measures import alignment_report

    names = tuple(dict.fromkeys(("mnno", *names)))
    rows = []
    for job, _, sets in _kept(jobs):
        k = job.record.k
        values = alignment_report(sets, names, k)
        intervals = bootstrap_intervals(sets, names, k, resamples=resamples, level=level, seed=seed)
        rows.append({"job": str(job.path), "setting": _setting(job), "values": values,
                     "interval": {key: None if i is None else i.as_dict() for key, i in intervals.items()}})
    return rows


def _kept(jobs: list[Job]):
    """(job, its tensors, their Representations under the job's neighbour convention) for each job
    that kept its mapped vectors."""
    for job in jobs:
        tensors = job_sets(job)
        if tensors is None:
            continue
        r = job.record
        yield job, tensors, {name: Representation(t, metric=r.neighbor_metric, include_self=r.include_self, name=name)
                             for name, t in tensors.items()}


def _setting(job: Job) -> str:
    r = job.record
    return f"{r.dataset} {r.direction} {r.mapper}"


def intervals_markdown(rows: list[dict], names: tuple[str, ...]) -> str:
    """The rows as one table: each measure's value [low, high] for (X, f(X)), (Y, f(X)), (X, Y)."""
    names = tuple(dict.fromkeys(("mnno", *names)))
    head = ["setting", "measure", "(X, f(X))", "(Y, f(X))", "(X, Y)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for name in names:
            cells = [row["setting"], name]
            for pair, _ in SHOWN:
                value, interval = row["values"].get(f"{name}_{pair}"), row["interval"].get(f"{name}_{pair}")
                if value is None or not math.isfinite(value):
                    cells.append("undefined")
                else:
                    outside = interval is not None and not interval["low"] <= value <= interval["high"]
                    cells.append(f"{value:.3f}" if interval is None
                                 else f"{value:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"
                                 + (" †" if outside else ""))
            lines.append("| " + " | ".join(cells) + " |")
    first = next((i for row in rows for i in row["interval"].values() if i), None)
    how = "" if first is None else f" ({first['level']:.0%}, {first['resamples']} resamples)"
    from bridgeeval.metrics.bootstrap import OUTSIDE_NOTE

    note = "\n" + OUTSIDE_NOTE + "\n" if any(" †" in line for line in lines) else ""
    return (f"Bootstrap intervals over items{how}: k-NN means resample the items' values, the other measures "
            "the paired rows (docs/scoring.md)\n\n" + "\n".join(lines) + "\n" + note)
