"""Trained linear maps beside the closed form on the same folds: how far training got from the
least-squares optimum (``mapper=lstsq``).

A ``lin`` job and an ``lstsq`` job are paired when they map the same data the same way (data set,
direction, features, loss, neighbour settings) over the very same validation items in each split
(``items.npz``), so that the gap is the training's and nothing else's.
"""

from __future__ import annotations

import numpy as np

from bridgeeval.reports.collect import Job

MATCHED = ("dataset", "direction", "loss", "k", "include_self", "neighbor_metric", "protocol")
COLUMNS = (("val/loss", "val/loss"), ("mnno_input_mapped", "mNNO(X,f(X))"), ("mnno_target_mapped", "mNNO(Y,f(X))"))


def closed_form_gaps(jobs: list[Job], evaluation: str = "fold") -> list[dict]:
    """One row per trained ``lin`` job with a matching ``lstsq`` job: each value of both and the
    trained map's gap (trained minus closed form)."""
    references = [j for j in jobs if j.record.mapper == "lstsq"]
    rows = []
    for trained in (j for j in jobs if j.record.mapper == "lin"):
        reference = next((r for r in references if _same_data(trained, r) and _same_folds(trained, r)), None)
        if reference is None:
            continue
        row = {"setting": f"{trained.record.dataset} {trained.record.direction}", "lin": str(trained.path),
               "lstsq": str(reference.path)}
        for key, _ in COLUMNS:
            a, b = _value(trained, key, evaluation), _value(reference, key, evaluation)
            row[key] = {"lin": a, "lstsq": b, "gap": None if a is None or b is None else a - b}
        rows.append(row)
    return rows


def gaps_markdown(rows: list[dict]) -> str:
    head = ["setting"] + [f"{name} {what}" for _, name in COLUMNS for what in ("lin", "lstsq", "gap")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["setting"]]
        for key, _ in COLUMNS:
            cells += [_number(row[key][what], signed=what == "gap") for what in ("lin", "lstsq", "gap")]
        lines.append("| " + " | ".join(cells) + " |")
    return ("Trained linear maps against the closed form (mapper=lstsq) on the same folds; gap = lin - lstsq\n\n"
            + "\n".join(lines) + "\n")


def _value(job: Job, key: str, evaluation: str) -> float | None:
    values = job.record.values
    if key == "val/loss":
        value = values.get("val/loss")
    elif evaluation == "pooled" and not job.single_split:
        value = values.get(f"pooled/{key}")
    else:
        value = values.get(f"val/{key}")
    return float(value) if isinstance(value, (int, float)) else None


def _same_data(a: Job, b: Job) -> bool:
    ra, rb = a.record, b.record
    same = all(getattr(ra, k) == getattr(rb, k) for k in MATCHED)
    features = ("text_features", "image_features", "input_sha256", "target_sha256")
    return same and all(ra.data.get(k) == rb.data.get(k) for k in features)


def _same_folds(a: Job, b: Job) -> bool:
    """The same validation items in every split, split by split."""
    ia, ib = a.split_indices(), b.split_indices()
    return bool(ia) and ia.keys() == ib.keys() and all(np.array_equal(ia[s], ib[s]) for s in ia)


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
