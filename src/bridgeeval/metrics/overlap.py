"""Nearest-neighbour overlap and mNNO (Collell & Moens 2018, Definition 1)."""

from __future__ import annotations

import math

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.neighbours import knn_indices, knn_indices_of_rows
from bridgeeval.metrics.validation import as_tensor, check_k, check_metric, check_paired, check_points

_OVERLAP_ELEMENTS = 1 << 24  # rows x k x k booleans per chunk


def nn_overlap(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """Per-item count of neighbours two paired lists share: ``LongTensor[N]``.

    Example (the paper's: neighbours {3, 5, 6} and {2, 3, 6} overlap in 2):
        >>> nn_overlap(torch.tensor([[3, 5, 6]]), torch.tensor([[2, 3, 6]])).tolist()
        [2]
    """
    if idx_a.shape != idx_b.shape or idx_a.ndim != 2:
        raise BridgeEvalError(
            f"neighbour lists must have the same [N, k] shape, got {tuple(idx_a.shape)} and {tuple(idx_b.shape)}"
        )
    idx_b = idx_b.to(idx_a.device)
    n, k = idx_a.shape
    step = max(1, _OVERLAP_ELEMENTS // max(1, k * k))
    out = torch.empty(n, dtype=torch.long, device=idx_a.device)
    for start in range(0, n, step):
        a, b = idx_a[start : start + step], idx_b[start : start + step]
        out[start : start + step] = (a.unsqueeze(2) == b.unsqueeze(1)).any(dim=2).sum(dim=1)
    return out


def mnno_from_indices(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    """mNNO of two paired neighbour lists: mean overlap divided by k, in [0, 1]."""
    return float(nn_overlap(idx_a, idx_b).double().mean() / idx_a.shape[1])


def mnno_chance(n: int, k: int, include_self: bool = False) -> float:
    """mNNO of N items paired at random, exactly (the mean over all N! pairings): each item's list
    in one set meets a uniformly random k of the N - 1 others in the other, so k / (N - 1); with
    self counted (each item its own first neighbour: no repeated rows) (1 + (k - 1)^2 / (N - 1)) / k.

    Example:
        >>> mnno_chance(11, 5), mnno_chance(11, 5, include_self=True)
        (0.5, 0.52)
    """
    return (1.0 + (k - 1) ** 2 / (n - 1)) / k if include_self else k / (n - 1)


def mnno(a, b, k: int = 10, metric: str = "cosine", include_self: bool = False) -> float:
    """Mean nearest-neighbour overlap of two paired sets (rows paired by index; dims may differ).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
        >>> mnno(x, 2 * x + 1, k=1, metric="euclidean")
        1.0
    """
    a, b = as_tensor(a, "a"), as_tensor(b, "b")
    check_paired({"a": a, "b": b})
    return mnno_from_indices(
        knn_indices(a, k, metric, include_self), knn_indices(b.to(a.device), k, metric, include_self)
    )


def mnno_sampled(
    a, b, k: int = 10, metric: str = "cosine", n_queries: int = 10_000, seed: int = 0, include_self: bool = False
) -> tuple[float, float]:
    """Unbiased estimate of mNNO from ``n_queries`` random rows, each searched exactly against all N.

    For N past what exact all-pairs search serves. Returns ``(estimate, standard_error)``; the
    standard error is that of a mean of per-row overlaps (with a finite-population correction).
    Approximate indexes would bias mNNO downward and are not used.
    """
    a, b = as_tensor(a, "a"), as_tensor(b, "b")
    n = check_paired({"a": a, "b": b})
    check_metric(metric)
    for name, t in (("a", a), ("b", b)):
        check_points(t, name, metric)
    check_k(k, n, include_self)
    m = min(n_queries, n)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:m].to(a.device)
    overlap = (
        nn_overlap(
            knn_indices_of_rows(a, rows, k, metric, include_self),
            knn_indices_of_rows(b.to(a.device), rows, k, metric, include_self),
        ).double()
        / k
    )
    mean = float(overlap.mean())
    if m < 2:
        return mean, float("nan")
    fpc = (n - m) / (n - 1) if n > 1 else 0.0
    return mean, float(overlap.std(unbiased=True)) * math.sqrt(fpc / m)
