"""Differences of one-set statistics (ReSi's family, Klabunde et al. 2024): each set is summarised
alone and the summaries compared, so the pairing of the rows does not matter.

* ``magnitude_difference``: | ||mean(A)|| - ||mean(B)|| |, in the sets' own units;
* ``concentricity_difference``: the difference of the mean cosine of each row with its set's mean
  (how tightly the rows point one way);
* ``uniformity_difference``: the difference of log(mean over all pairs i, j of exp(-2 ||x_i - x_j||^2))
  (Wang & Isola 2020, t = 2, the pair of a row with itself included), in the sets' own units.

Lower is more similar; 0 for two sets with the same statistic.
"""

from __future__ import annotations

import math

import torch

from bridgeeval.metrics.representation import Representation, paired
from bridgeeval.metrics.tiles import symmetric_tiles

_BLOCK = 2048
_LEAF = 256


def magnitude_difference(a, b) -> float:
    """Difference of the norms of the two sets' mean vectors.

    Example:
        >>> import torch
        >>> magnitude_difference(torch.tensor([[3.0, 0.0], [3.0, 8.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        4.0
    """
    ra, rb = paired(a, b)
    return abs(_mean_norm(ra) - _mean_norm(rb))


def concentricity_difference(a, b) -> float:
    """Difference of the mean cosine of each row with its set's mean; NaN where a set's mean is 0
    (no direction to compare with). A zero row has cosine 0 (scikit-learn's convention, ReSi's)."""
    ra, rb = paired(a, b)
    return abs(_concentricity(ra) - _concentricity(rb))


def uniformity_difference(a, b) -> float:
    """Difference of the sets' uniformity, log(mean_ij exp(-2 ||x_i - x_j||^2))."""
    ra, rb = paired(a, b)
    return abs(_uniformity(ra) - _uniformity(rb))


def _mean_norm(r: Representation) -> float:
    return r.memo("mean_norm", lambda: math.ldexp(float(r.float64_copy().mean(dim=0).norm()), r.exponent))


def _concentricity(r: Representation) -> float:
    def compute() -> float:
        x = r.float64_copy()
        mean = x.mean(dim=0)
        if float(mean.norm()) == 0.0:
            return float("nan")
        norms = x.norm(dim=1)
        cos = (x @ mean) / (torch.where(norms > 0, norms, torch.inf) * mean.norm())
        return float(cos.mean())

    return r.memo("concentricity", compute)


def _uniformity(r: Representation) -> float:
    """Summed blockwise over pairs of row blocks (each unordered pair once); the diagonal's N
    terms of exp(0) = 1 keep the sum >= N, so no log-sum-exp is needed."""
    def compute() -> float:
        x = r.x.to(torch.float64)  # the set's own units: the measure is not scale-invariant
        x = x - x.mean(dim=0)  # distances do not change; smaller norms, less cancellation
        sq = x.pow(2).sum(dim=1)
        total = 0.0
        for i0, i1, j0, j1, diagonal in symmetric_tiles(r.n, _BLOCK, _LEAF):
            d2 = (sq[i0:i1].unsqueeze(1) + sq[j0:j1].unsqueeze(0)).sub_(2.0 * (x[i0:i1] @ x[j0:j1].T)).clamp_(min=0.0)
            if diagonal:
                d2.fill_diagonal_(0.0)
            total += (1.0 if diagonal else 2.0) * float(d2.mul_(-2.0).exp_().sum())
        return math.log(total / (r.n * r.n))

    return r.memo("uniformity", compute)
