"""The cross-modal report: mNNO of the three pairs, fit and retrieval measures, hubness."""

from __future__ import annotations

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.neighbours import knn_indices
from bridgeeval.metrics.overlap import mnno_from_indices
from bridgeeval.metrics.validation import as_tensor, check_k, check_metric, check_paired

REPORT_KEYS = (
    "mnno_input_mapped",
    "mnno_target_mapped",
    "mnno_input_target",
    "mse",
    "r2",
    "recall_at_k",
    "hubness",
)
# The values that depend on the neighbour metric (cosine, euclidean); MSE and R^2 do not.
NEIGHBOUR_KEYS = ("mnno_input_mapped", "mnno_target_mapped", "mnno_input_target", "recall_at_k", "hubness")
_RANK_BLOCK = 2048


def cross_modal_report(
    x,
    y,
    mapped,
    k: int = 10,
    metric: str = "cosine",
    include_self: bool = False,
    neighbours: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Everything Experiment 1 asks of a mapping ``f`` with ``mapped = f(x)`` paired to ``y``.

    Keys: ``mnno_input_mapped`` = mNNO(X, f(X)), ``mnno_target_mapped`` = mNNO(Y, f(X)),
    ``mnno_input_target`` = mNNO(X, Y), ``mse`` (mean over elements), ``r2`` (uniform average over
    output dimensions), ``recall_at_k`` (how often y_i is among the k targets nearest to f(x_i)) and
    ``hubness`` (skewness of the k-occurrence counts of the mapped set, Radovanovic et al. 2010).

    Each set's neighbours are computed once; ``neighbours`` may pass cached lists for ``"input"``
    and ``"target"`` (they never change during training), and for ``"mapped"``.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [4.0], [9.0]])
        >>> r = cross_modal_report(x, x, x, k=1, metric="euclidean")
        >>> r["mnno_input_mapped"], r["mse"], r["recall_at_k"]
        (1.0, 0.0, 1.0)
    """
    x, y, mapped = as_tensor(x, "input"), as_tensor(y, "target"), as_tensor(mapped, "mapped")
    n = check_paired({"input": x, "target": y, "mapped": mapped})
    if mapped.shape[1] != y.shape[1]:
        raise BridgeEvalError(
            f"mapped has {mapped.shape[1]} dimensions but target has {y.shape[1]}: f(X) must live in Y's space"
        )
    check_metric(metric)
    check_k(k, n, include_self)
    dev = mapped.device
    # One float64 copy of each set serves every measure below.
    y, mapped = y.to(dev).double(), mapped.double()
    cached = neighbours or {}
    idx = {
        "input": cached.get("input"),
        "target": cached.get("target"),
        "mapped": cached.get("mapped"),
    }
    for name, t in (("input", x), ("target", y), ("mapped", mapped)):
        if idx[name] is None:
            idx[name] = knn_indices(t.to(dev), k, metric, include_self, name=name)  # checks t too
        else:
            idx[name] = idx[name].to(dev)
            if idx[name].shape != (n, k):
                raise BridgeEvalError(
                    f"cached {name} neighbours have shape {tuple(idx[name].shape)}, expected {(n, k)}"
                )
    diff = mapped - y
    sq_err = diff.mul_(diff)
    return {
        "mnno_input_mapped": mnno_from_indices(idx["input"], idx["mapped"]),
        "mnno_target_mapped": mnno_from_indices(idx["target"], idx["mapped"]),
        "mnno_input_target": mnno_from_indices(idx["input"], idx["target"]),
        "mse": float(sq_err.mean()),
        "r2": r2_score(mapped, y, sq_err),
        "recall_at_k": recall_at_k(mapped, y, k, metric),
        "hubness": hubness(idx["mapped"], n),
    }


def r2_score(pred: torch.Tensor, target: torch.Tensor, sq_err: torch.Tensor | None = None) -> float:
    """Coefficient of determination per output dimension, averaged (scikit-learn's default).

    ``sq_err`` may pass ``(pred - target)**2`` where the caller already has it.
    """
    pred, target = pred.double(), target.double()  # no-ops for float64 input
    ss_res = (sq_err if sq_err is not None else (target - pred).pow(2)).sum(dim=0)
    centred = target - target.mean(dim=0)
    ss_tot = centred.mul_(centred).sum(dim=0)
    ok = ss_tot > 0
    if not bool(ok.any()):
        return float("nan")
    return float((1.0 - ss_res[ok] / ss_tot[ok]).mean())


def retrieval_ranks(queries: torch.Tensor, targets: torch.Tensor, metric: str) -> torch.Tensor:
    """Rank of the paired target among all targets for each query (0 = nearest; ties by index)."""
    q, t = queries.double(), targets.double()
    # Per query, targets rank by cos ~ <q, t>/|t| or by |t|^2 - 2<q, t>: |q| is a row constant.
    if metric == "cosine":
        scale = -1.0 / t.norm(dim=1).clamp_min(1e-300)
    else:
        sq_t = t.pow(2).sum(dim=1)
    ranks = torch.empty(len(q), dtype=torch.long, device=q.device)
    for start in range(0, len(q), _RANK_BLOCK):
        rows = torch.arange(start, min(start + _RANK_BLOCK, len(q)), device=q.device)
        prod = q[rows] @ t.T
        dist = prod.mul_(scale.unsqueeze(0)) if metric == "cosine" else sq_t.unsqueeze(0) - 2.0 * prod
        own = dist.gather(1, rows.unsqueeze(1))
        cols = torch.arange(len(t), device=q.device).unsqueeze(0)
        before = (dist < own) | ((dist == own) & (cols < rows.unsqueeze(1)))
        ranks[rows] = before.sum(dim=1)
    return ranks


def recall_at_k(mapped: torch.Tensor, target: torch.Tensor, k: int, metric: str = "cosine") -> float:
    """Fraction of items whose own target is among the k targets nearest to the mapped vector."""
    return float((retrieval_ranks(mapped, target, metric) < k).double().mean())


def hubness(neighbour_idx: torch.Tensor, n: int) -> float:
    """Skewness of the k-occurrence distribution N_k (how often each point is someone's neighbour)."""
    counts = torch.bincount(neighbour_idx.reshape(-1), minlength=n).double()
    centred = counts - counts.mean()
    var = centred.pow(2).mean()
    if float(var) == 0.0:
        return 0.0
    return float(centred.pow(3).mean() / var.pow(1.5))
