"""Epochs chosen by cross-validation, as the paper chose them: the epoch count at which the mean
validation curve over the folds is best.

Each split's history holds one row per epoch; the mean over the splits is taken at every epoch
that all of them reached (early stopping may end some sooner), and the best mean wins, the
earliest on a tie (fewer epochs for the same value).
"""

from __future__ import annotations

import math
from collections import defaultdict


def best_epoch(history: list[dict], metric: str, maximize: bool = False) -> tuple[int, float] | None:
    """``(epochs, mean value)``: train for ``epochs`` (1-based) to reach the best mean of ``metric``;
    None when no epoch has a finite mean in every split.

    Example:
        >>> rows = [{"split": s, "epoch": e, "val/loss": v}
        ...         for s, curve in (("fold0", [3.0, 1.0, 2.0]), ("fold1", [3.0, 2.0, 1.5]))
        ...         for e, v in enumerate(curve)]
        >>> best_epoch(rows, "val/loss")
        (2, 1.5)
    """
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for row in history:
        if row.get("split") != "pooled" and metric in row:
            curves[row["split"]][int(row["epoch"])] = float(row[metric])
    if not curves:
        return None
    reached = set.intersection(*(set(curve) for curve in curves.values()))
    means = {e: math.fsum(curve[e] for curve in curves.values()) / len(curves) for e in sorted(reached)}
    finite = [(value, epoch) for epoch, value in means.items() if math.isfinite(value)]
    if not finite:
        return None
    value, epoch = (max(finite, key=lambda p: (p[0], -p[1])) if maximize else min(finite))
    return epoch + 1, value
