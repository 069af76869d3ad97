"""Comparisons of the two sets' distance matrices D_A, D_B (N x N; Euclidean, or 1 - cos for the
whitened RSA under cosine), one block of row pairs at a time (``metrics.tiles``), never holding
either matrix.

* ``distance_correlation`` (Székely et al. 2007): dCor = sqrt(dCov^2(A, B) / sqrt(dVar^2(A)
  dVar^2(B))) with the double-centred distance matrices' V-statistics, in [0, 1]. Summed as
  sum_ij a_ij b_ij - 2/N sum_i a_i. b_i. + (sum a)(sum b)/N^2 from the blocks' products and the
  row sums, which the double-centred matrices equal.
* ``rsa_whitened``: rsatoolbox's whitened comparators, the cosine of H D_A H and H D_B H (the
  same sums, distances under the sets' metric).
* ``rsm_norm_difference``: ||D_A - D_B||_F over all N^2 entries, in the sets' own units (ReSi's
  RSM norm difference with Euclidean distances; ReSi's code takes numpy's 2-norm of the square
  matrices, which is their largest singular value, where its paper states the Frobenius norm:
  we follow the paper).

The distances are float64, of the centred copies (distances do not change; smaller norms, less
cancellation in |a|^2 + |b|^2 - 2 a.b), or of the unit rows for 1 - cos.
"""

from __future__ import annotations

import math

import torch

from bridgeeval.metrics.representation import Representation, paired
from bridgeeval.metrics.tiles import symmetric_tiles

_BLOCK = 2048
_LEAF = 256


def distance_correlation(a, b) -> float:
    """Distance correlation of two paired sets, in [0, 1]; 0 only for independent samples in the
    limit, 1 for sets equal up to rotation, translation and scale.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [3.0, 1.0], [2.0, 5.0]])
        >>> round(distance_correlation(x, 3 * x + 1), 6)
        1.0
    """
    ra, rb = paired(a, b)
    s = _sums(ra, rb)
    cov = _double_centred(s["ab"], s["row_a"], s["row_b"])
    var_a, var_b = _double_centred(s["aa"], s["row_a"], s["row_a"]), _double_centred(s["bb"], s["row_b"], s["row_b"])
    if not (var_a > 0 and var_b > 0):
        return float("nan")
    return math.sqrt(min(1.0, max(0.0, cov / math.sqrt(var_a * var_b))))  # in [0, 1] but for rounding


def rsm_norm_difference(a, b) -> float:
    """Frobenius norm of the difference of the two Euclidean distance matrices; 0 for sets equal
    up to rotation and translation."""
    ra, rb = paired(a, b)
    return math.sqrt(max(0.0, _sums(ra, rb)["diff_sq"]))


def _double_centred(prod: float, rows_1: torch.Tensor, rows_2: torch.Tensor) -> float:
    """<H D_1 H, H D_2 H>_F from sum(D_1 D_2) and the row sums (H = I - 11'/N, D symmetric)."""
    n = len(rows_1)
    return prod - 2.0 / n * float(rows_1 @ rows_2) + float(rows_1.sum()) * float(rows_2.sum()) / (n * n)


def rsa_whitened(ra: Representation, rb: Representation, method: str = "cosine") -> float:
    """rsatoolbox's whitened RDM comparators with its default (identity) pattern covariance:
    ``"cosine"`` (``cosine_cov``) is the cosine of the double-centred distance matrices H D H
    (Diedrichsen et al. 2021), ``"corr"`` (``corr_cov``) the same after each RDM's mean pair
    distance c is subtracted, H (D - c(11' - I)) H = H D H + c H. Distances follow the sets'
    metric (1 - cos, or Euclidean), as the other RSA measures'.

    Example:
        >>> import torch
        >>> from bridgeeval.metrics.representation import paired
        >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [3.0, 1.0], [2.0, 5.0]])
        >>> round(rsa_whitened(*paired(x, 3 * x), "corr"), 6)
        1.0
    """
    s = _sums(ra, rb, ra.metric)
    n = ra.n
    sums = {"a": float(s["row_a"].sum()), "b": float(s["row_b"].sum())}
    rows = {"a": s["row_a"], "b": s["row_b"]}
    prods = {"ab": s["ab"], "aa": s["aa"], "bb": s["bb"]}

    def inner(x: str, y: str) -> float:  # <H D_x H + c_x H, H D_y H + c_y H>_F
        value = _double_centred(prods[x + y], rows[x], rows[y])
        if method == "corr":
            c_x, c_y = sums[x] / (n * (n - 1)), sums[y] / (n * (n - 1))
            value += -c_y * sums[x] / n - c_x * sums[y] / n + c_x * c_y * (n - 1)  # tr(H D H) = -sum(D) / n
        return value

    ab, aa, bb = inner("a", "b"), inner("a", "a"), inner("b", "b")
    if not (aa > 0 and bb > 0):
        return float("nan")
    r = ab / math.sqrt(aa * bb)  # a cosine, in [-1, 1] but for rounding
    return r if math.isnan(r) else min(1.0, max(-1.0, r))


def _distances(x: torch.Tensor, sq: torch.Tensor | None, i0: int, i1: int, j0: int, j1: int) -> torch.Tensor:
    if sq is None:  # unit rows: cosine distance
        d = (x[i0:i1] @ x[j0:j1].T).neg_().add_(1.0).clamp_(min=0.0)
        if i0 == j0:
            d.fill_diagonal_(0.0)
        return d
    d2 = (sq[i0:i1].unsqueeze(1) + sq[j0:j1].unsqueeze(0)).sub_(2.0 * (x[i0:i1] @ x[j0:j1].T)).clamp_(min=0.0)
    if i0 == j0:
        d2.fill_diagonal_(0.0)
    return d2.sqrt_()


def _sums(ra: Representation, rb: Representation, metric: str = "euclidean") -> dict:
    """One pass over the pairs: sum(D_A D_B), sum(D_A^2), sum(D_B^2), the row sums (the copies'
    units) and sum((D_A - D_B)^2) in the sets' own units; D Euclidean, or 1 - cos."""
    def compute() -> dict:
        if metric == "cosine":  # unit rows, no norms: 1 - u.v
            xa, xb = (_unit_rows(r) for r in (ra, rb))
            sq_a = sq_b = None
            scale_a = scale_b = 1.0
        else:
            xa, xb = ra.centred(), rb.centred()
            sq_a, sq_b = xa.pow(2).sum(dim=1), xb.pow(2).sum(dim=1)
            scale_a, scale_b = 2.0 ** ra.exponent, 2.0 ** rb.exponent
        row_a = torch.zeros(ra.n, dtype=torch.float64, device=xa.device)
        row_b = torch.zeros_like(row_a)
        ab = aa = bb = diff_sq = 0.0
        for i0, i1, j0, j1, diagonal in symmetric_tiles(ra.n, _BLOCK, _LEAF):
            da, db = _distances(xa, sq_a, i0, i1, j0, j1), _distances(xb, sq_b, i0, i1, j0, j1)
            weight = 1.0 if diagonal else 2.0
            ab += weight * float((da * db).sum())
            aa += weight * float(da.pow(2).sum())
            bb += weight * float(db.pow(2).sum())
            diff_sq += weight * float((da * scale_a - db * scale_b).pow_(2).sum())
            row_a[i0:i1] += da.sum(dim=1)
            row_b[i0:i1] += db.sum(dim=1)
            if not diagonal:
                row_a[j0:j1] += da.sum(dim=0)
                row_b[j0:j1] += db.sum(dim=0)
        return {"ab": ab, "aa": aa, "bb": bb, "row_a": row_a, "row_b": row_b, "diff_sq": diff_sq}

    return ra.pair_memo(rb, ("distance_sums", metric), compute)


def _unit_rows(r: Representation) -> torch.Tensor:
    x = r.float64_copy()
    return x.div_(x.norm(dim=1, keepdim=True))
