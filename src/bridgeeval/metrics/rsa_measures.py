"""Representational similarity analysis (Kriegeskorte et al. 2008): the correlation, over all
N(N-1)/2 pairs of items, between the pair's distance in one set and in the other.

Distances follow the neighbour metric: cosine distance 1 - cos, or Euclidean distance (not
squared). ``method="pearson"`` correlates the distances, ``"spearman"`` their ranks (ties share
their average rank, as ``scipy.stats.spearmanr``).

Exactness and size:

* Pearson is exact at every N: one pass over pairs of row blocks accumulates the five sums it
  needs (float64), never holding the N x N distances.
* Spearman is exact while the pairs number at most ``max_pairs`` (default 2^23, N <= 4,096: the
  condensed distances and their ranks in memory). Beyond, an unbiased sampled estimate: with
  s(p, q) = sign(d_p - d_q), a pair's mid-rank is (M + 1)/2 + sum_q s(p, q)/2 among the M pairs,
  so the rank covariance is M^2/4 E[s_A(p, q) s_B(p, r)] over independent uniform pairs p, q, r,
  and the rank variance of M untied values is (M^2 - 1)/12. The expectation is estimated on
  ``n_samples`` triples drawn as independent blocks of random rows and columns (GEMMs, not
  gathers); the estimate is unbiased when no two pair distances tie (continuous data; duplicated
  items tie, which shrinks the true variance and pulls the estimate slightly towards 0). Its
  standard error comes from the spread of independent rounds (:func:`rsa_sampled`).
"""

from __future__ import annotations

import math

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.representation import Representation, paired
from bridgeeval.metrics.tiles import symmetric_tiles

METHODS = ("spearman", "pearson", "cosine", "rho_a", "tau_a")
_BLOCK = 2048
_LEAF = 256  # rows of the smallest diagonal tile (metrics.tiles)
_SAMPLE_BLOCK = 512  # rows and columns of each sampled block: 512^2 triples a round
MAX_PAIRS = 1 << 23
N_SAMPLES = 1 << 24


def rsa(
    a,
    b,
    method: str = "spearman",
    metric: str = "cosine",
    max_pairs: int = MAX_PAIRS,
    n_samples: int = N_SAMPLES,
    seed: int = 0,
) -> float:
    """Correlation of the pairwise distances of two paired sets, in [-1, 1].

    Example (distances of a scaled copy keep their order and ratios):
        >>> import torch
        >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [3.0, 1.0], [2.0, 5.0]])
        >>> rsa(x, 10 * x, method="pearson", metric="euclidean"), rsa(x, x + 1, metric="euclidean")
        (1.0, 1.0)
    """
    if method not in METHODS:
        raise BridgeEvalError(f"rsa: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    ra, rb = paired(a, b, metric)
    if ra.n < 3:
        raise BridgeEvalError(f"rsa needs at least 3 items (2 pairs), got {ra.n}")
    if method in ("pearson", "cosine"):
        return _streamed(ra, rb, metric, centred=method == "pearson")
    if _n_pairs(ra.n) <= max_pairs:
        return {"spearman": _spearman_exact, "rho_a": _rho_a_exact, "tau_a": _tau_a_exact}[method](ra, rb, metric)
    # Beyond, untied pair distances make rho-a Spearman's rho; Kendall's tau-a has its own estimate.
    return rsa_sampled(ra, rb, metric, n_samples, seed, kendall=method == "tau_a")[0]


def rsa_sampled(a, b, metric: str = "cosine", n_samples: int = N_SAMPLES, seed: int = 0,
                kendall: bool = False) -> tuple[float, float]:
    """Unbiased estimate of the Spearman RSA from ``n_samples`` random triples of pairs, with its
    standard error: ``(estimate, stderr)`` (see the module's docstring). With ``kendall``, of
    Kendall's tau-a: E[s_A(p, q) s_B(p, q)] over independent uniform pairs p, q is
    tau-a (M - 1) / M (p = q contributes 0)."""
    ra, rb = paired(a, b, metric)
    if ra.n < 3:
        raise BridgeEvalError(f"rsa needs at least 3 items (2 pairs), got {ra.n}")
    m = _n_pairs(ra.n)
    gen = torch.Generator().manual_seed(seed)
    side = _SAMPLE_BLOCK
    rounds = max(2, math.ceil(n_samples / (side * side)))
    means = []
    for _ in range(rounds):
        rows = torch.randint(ra.n, (6, side), generator=gen).to(ra.x.device)
        p, q, r = (rows[0], rows[1]), (rows[2], rows[3]), (rows[4], rows[5])
        s_a = torch.sign(_distances_at(ra, metric, *p) - _distances_at(ra, metric, *q))
        s_b = torch.sign(_distances_at(rb, metric, *p) - _distances_at(rb, metric, *(q if kendall else r)))
        valid = _distinct(*p) & _distinct(*q) & _distinct(*r)
        means.append(float((s_a * s_b)[valid].mean()))
    scale = m / (m - 1.0) if kendall else 3.0 * m * m / (m * m - 1.0)  # (M^2 / 4) / ((M^2 - 1) / 12)
    values = torch.tensor(means, dtype=torch.float64) * scale
    return float(values.mean()), float(values.std(unbiased=True) / math.sqrt(rounds))


def _n_pairs(n: int) -> int:
    return n * (n - 1) // 2


def _distinct(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return rows.unsqueeze(1) != cols.unsqueeze(0)


def distance_copy(r: Representation, metric: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """float64 unit rows (cosine) or rows and their squared norms (Euclidean)."""
    def compute():
        x = r.float64_copy()
        if metric == "cosine":
            norms = x.norm(dim=1, keepdim=True)
            if bool((norms == 0).any()):
                row = int((norms.squeeze(1) == 0).nonzero()[0])
                raise BridgeEvalError(f"{r.name}: row {row} is a zero vector, which has no cosine distance")
            return x.div_(norms), None
        return x, x.pow(2).sum(dim=1)

    return r.memo(("rsa_copy", metric), compute)


def _distances_at(r: Representation, metric: str, rows, cols) -> torch.Tensor:
    """Distances of every (rows[u], cols[v]), rows and cols index tensors or slices:
    ``[len(rows), len(cols)]``."""
    x, sq = distance_copy(r, metric)
    prod = x[rows] @ x[cols].T
    if sq is None:
        return prod.neg_().add_(1.0).clamp_(min=0.0)
    return (sq[rows].unsqueeze(1) + sq[cols].unsqueeze(0)).sub_(prod.mul_(2.0)).clamp_(min=0.0).sqrt_()


def _streamed(ra: Representation, rb: Representation, metric: str, centred: bool) -> float:
    """Pearson correlation (``centred``) or cosine of the two vectors of pair distances."""
    m, (shift_a, shift_b), (sa, sb, saa, sbb, sab) = ra.pair_memo(
        rb, ("rsa_sums", metric), lambda: _shifted_sums(ra, rb, metric))
    if centred:
        cov, var_a, var_b = sab - sa * sb / m, saa - sa * sa / m, sbb - sb * sb / m
    else:  # the raw sums from the shifted ones: sum (a + s)(b + t) = sum ab + t sum a + s sum b + m s t
        cov = sab + shift_b * sa + shift_a * sb + m * shift_a * shift_b
        var_a = saa + 2.0 * shift_a * sa + m * shift_a * shift_a
        var_b = sbb + 2.0 * shift_b * sb + m * shift_b * shift_b
    if var_a <= 0 or var_b <= 0:
        return float("nan")  # every pair at the same distance in one set (or at 0, for the cosine)
    # A cosine, in [-1, 1]: rounding put a scaled copy's at 1 + 2^-52 (and atanh of it is NaN).
    r = cov / math.sqrt(var_a * var_b)
    return r if math.isnan(r) else min(1.0, max(-1.0, r))


def _shifted_sums(ra: Representation, rb: Representation, metric: str):
    """The pair distances' sums about a first estimate of their means (no cancellation): the
    number of pairs, the shifts, and sum a, sum b, sum a^2, sum b^2, sum ab (float64)."""
    sums = torch.zeros(5, dtype=torch.float64)
    shift = None
    for i0, i1, j0, j1, diagonal in symmetric_tiles(ra.n, _BLOCK, _LEAF):  # pairs i < j: diagonal tiles masked
        block = (slice(i0, i1), slice(j0, j1))
        da, db = _distances_at(ra, metric, *block), _distances_at(rb, metric, *block)
        if diagonal:
            upper = torch.triu(torch.ones_like(da, dtype=torch.bool), diagonal=1)
            da, db = da[upper], db[upper]
        if shift is None:  # sums about a first estimate of the means: no cancellation
            shift = (float(da.mean()), float(db.mean()))
        da, db = da.reshape(-1) - shift[0], db.reshape(-1) - shift[1]
        sums += torch.stack([da.sum(), db.sum(), (da * da).sum(), (db * db).sum(), (da * db).sum()]).cpu()
    return _n_pairs(ra.n), shift, tuple(float(v) for v in sums)


def condensed_distances(r: Representation, metric: str) -> torch.Tensor:
    """The N(N-1)/2 distances i < j in row-major order (scipy's ``pdist`` order)."""
    parts = []
    for i0 in range(0, r.n, _BLOCK):
        i1 = min(i0 + _BLOCK, r.n)
        block = _distances_at(r, metric, slice(i0, i1), slice(i0, r.n))
        upper = torch.ones_like(block, dtype=torch.bool).triu_(diagonal=1)
        parts.append(block[upper])
    return torch.cat(parts)


def midranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks, ties sharing their average rank (``scipy.stats.rankdata``'s default)."""
    ordered, order = torch.sort(values)
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    ranks = torch.empty(len(values), dtype=torch.float64, device=values.device)
    ranks[order] = (ends - (counts.double() - 1.0) / 2.0)[inverse]
    return ranks


def _centred_ranks(r: Representation, metric: str) -> torch.Tensor:
    """The set's pair distances' midranks less their mean, once per set (a permutation null
    reorders them: ``Representation.permuted``)."""
    def compute() -> torch.Tensor:
        ranks = midranks(condensed_distances(r, metric))
        return ranks.sub_(ranks.mean())

    return r.memo(("rsa_ranks", metric), compute)


def condensed_index(order: torch.Tensor) -> torch.Tensor:
    """Where each pair i < j of the rows ``x[order]`` sits among ``x``'s condensed pairs: the
    condensed values of the reordered set are ``values[condensed_index(order)]``."""
    n = len(order)
    i, j = torch.triu_indices(n, n, offset=1, device=order.device)
    u, v = order[i], order[j]
    a, b = torch.minimum(u, v), torch.maximum(u, v)
    return a * n - a * (a + 1) // 2 + (b - a - 1)


def _spearman_exact(ra: Representation, rb: Representation, metric: str) -> float:
    rank_a, rank_b = _centred_ranks(ra, metric), _centred_ranks(rb, metric)
    denominator = float(rank_a.norm() * rank_b.norm())
    return float(rank_a @ rank_b) / denominator if denominator > 0 else float("nan")


def _rho_a_exact(ra: Representation, rb: Representation, metric: str) -> float:
    """rsatoolbox's rho-a: 1 - 6 sum (r_A - r_B)^2 / (M^3 - M) over the M pairs' midranks (both
    rank vectors have mean (M + 1)/2, so their centred forms give the same differences)."""
    rank_a, rank_b = _centred_ranks(ra, metric), _centred_ranks(rb, metric)
    m = float(len(rank_a))
    return 1.0 - 6.0 * float((rank_a - rank_b).pow(2).sum()) / (m**3 - m)


def _tau_a_exact(ra: Representation, rb: Representation, metric: str) -> float:
    """Kendall's tau-a of all the pair distances (``compare_vectors``)."""
    return compare_vectors(condensed_distances(ra, metric), condensed_distances(rb, metric), "tau_a")


def _tied_pairs(values: torch.Tensor) -> float:
    counts = torch.unique(values, return_counts=True)[1].double()
    return float((counts * (counts - 1.0)).sum() / 2.0)


def compare_vectors(x: torch.Tensor, y: torch.Tensor, method: str) -> float:
    """One RSA comparator of two given vectors of pair distances (float64), e.g. a bootstrap's."""
    if method == "tau_a":  # (concordant - discordant) / (M (M - 1) / 2), from scipy's O(M log M)
        # tau-b and the ties: tau-a = tau-b sqrt((n0 - t_x)(n0 - t_y)) / n0
        from scipy.stats import kendalltau

        n0 = len(x) * (len(x) - 1) / 2.0
        ties_x, ties_y = _tied_pairs(x), _tied_pairs(y)
        if n0 == 0 or ties_x == n0 or ties_y == n0:
            return float("nan")
        tau_b = float(kendalltau(x.cpu().numpy(), y.cpu().numpy()).statistic)
        return tau_b * math.sqrt((n0 - ties_x) * (n0 - ties_y)) / n0
    if method in ("spearman", "rho_a"):
        x, y = midranks(x), midranks(y)
        if method == "rho_a":
            m = float(len(x))
            return 1.0 - 6.0 * float((x - y).pow(2).sum()) / (m**3 - m)
    if method != "cosine":
        x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    return float(x @ y) / denominator if denominator > 0 else float("nan")
