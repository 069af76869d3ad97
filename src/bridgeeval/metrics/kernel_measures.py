"""Kernel alignment: CKA (linear and RBF kernels, biased and unbiased HSIC) and CKNNA, never
through an N x N matrix held whole.

Definitions, as in platonic-rep's ``metrics.py`` (Kornblith et al. 2019; Song et al. 2012):

* biased HSIC(K, L) = tr(K H L H) with H = I - 11^T/N (platonic-rep's ``hsic_biased``; its
  1/(N-1)^2 factor cancels in CKA);
* unbiased HSIC (Song et al.'s Eq. 5, platonic-rep's ``hsic_unbiased``), with K~, L~ = K, L with
  zero diagonals: [sum(K~ * L~^T) + 1'K~1 1'L~1 / ((N-1)(N-2)) - 2 1'K~L~1 / (N-2)] / (N(N-3));
* CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)). platonic-rep adds 1e-6 to that denominator;
  we do not, so CKA is exactly invariant to scaling either set (docs/measure.md);
* CKNNA (Huh et al. 2024): unbiased HSIC of K and L restricted to the pairs (i, j) where j is
  among i's k nearest neighbours in both sets (a row-wise mask, K and L linear kernels of the sets
  as given), normalised by the same quantity of each set with itself.

How: linear CKA from d x d cross-products (||A_c^T B_c||_F^2, O(N d^2)), or N x N Gram blocks when
N is the smaller side; the unbiased terms from row norms and column sums in O(N d). RBF kernels in
one pass over pairs of row blocks (each pair once), accumulating the sums HSIC needs. CKNNA from
the O(N k) neighbour pairs only. All in float64.
"""

from __future__ import annotations

import math

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.representation import Representation, paired
from bridgeeval.metrics.tiles import symmetric_tiles

_BLOCK = 2048  # rows per block of the RBF pass (two float64 2048 x 2048 blocks: 64 MiB)
_LEAF = 256  # rows of the smallest diagonal tile (metrics.tiles)


def cka(a, b, kernel: str = "linear", unbiased: bool = False, rbf_sigma: float | None = None) -> float:
    """Centred kernel alignment of two paired sets, in [0, 1] for the biased estimate.

    Args:
        a, b: ``[N, d_a]`` and ``[N, d_b]`` (rows paired), or :class:`Representation` objects.
        kernel: ``"linear"`` or ``"rbf"`` (exp(-|u - v|^2 / (2 sigma^2))).
        unbiased: the unbiased HSIC estimator (needs N >= 4).
        rbf_sigma: the RBF width; ``None`` takes each set's RMS pairwise distance
            (sqrt of the mean of |u - v|^2 over pairs), so that CKA is invariant to scaling either set;
            platonic-rep's default is a fixed 1.0.

    Example (linear CKA ignores rotations and isotropic scaling):
        >>> import torch
        >>> x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
        >>> round(cka(x, 3 * x @ q), 6)
        1.0
    """
    ra, rb = paired(a, b)
    if unbiased and ra.n < 4:
        raise BridgeEvalError(f"unbiased HSIC needs at least 4 items, got {ra.n}")
    if kernel == "linear":
        cross, self_a, self_b = _linear_hsic(ra, rb, unbiased), _linear_self(ra, unbiased), _linear_self(rb, unbiased)
    elif kernel == "rbf":
        cross, self_a, self_b = _rbf_hsic(ra, rb, unbiased, rbf_sigma)
    else:
        raise BridgeEvalError(f"cka: unknown kernel {kernel!r}; choose linear or rbf")
    return _ratio(cross, self_a, self_b)


def cknna(a, b, k: int = 10, metric: str = "cosine", include_self: bool = False) -> float:
    """CKA restricted to mutual k-nearest neighbours (Huh et al. 2024), with the unbiased HSIC.

    Neighbours follow the project's convention (exact, ties by index, ``metric``); the kernels are
    the inner products of the sets as given. platonic-rep ranks neighbours by inner product: on
    unit-length rows the two agree.
    """
    ra, rb = paired(a, b, metric, include_self)
    if ra.n < 4:
        raise BridgeEvalError(f"cknna needs at least 4 items, got {ra.n}")
    if k < 2:
        raise BridgeEvalError("cknna needs k >= 2")
    cross = _masked_hsic(ra, rb, k)
    return _ratio(cross, _masked_self(ra, k), _masked_self(rb, k))


def _ratio(cross: float, self_a: float, self_b: float) -> float:
    denominator = math.sqrt(self_a * self_b) if self_a * self_b > 0 else 0.0
    return cross / denominator if denominator > 0 else float("nan")


# Linear kernel -----------------------------------------------------------------------------------


def _frobenius_cross(ra: Representation, rb: Representation) -> float:
    """||A_c^T B_c||_F^2 (= <A_c A_c^T, B_c B_c^T>), from whichever side is cheaper; once per pair,
    for the biased and the unbiased estimator alike."""
    return ra.pair_memo(rb, "frobenius_cross", lambda: _frobenius_cross_of(ra, rb))


def _frobenius_cross_of(ra: Representation, rb: Representation) -> float:
    a, b = ra.centred(), rb.centred()
    if ra.n * ra.n * (ra.dim + rb.dim) < ra.n * ra.dim * rb.dim:
        total = 0.0
        for start in range(0, ra.n, _BLOCK):
            ga, gb = a[start : start + _BLOCK] @ a.T, b[start : start + _BLOCK] @ b.T
            total += float(ga.mul_(gb).sum())
        return total
    return float((a.T @ b).pow_(2).sum())


def _linear_hsic(ra: Representation, rb: Representation, unbiased: bool) -> float:
    if not unbiased:
        return _frobenius_cross(ra, rb)
    return _unbiased_linear(ra, rb, _frobenius_cross(ra, rb))


def _linear_self(r: Representation, unbiased: bool) -> float:
    return _linear_hsic(r, r, unbiased)  # its cross-product is memoised with the set


def _unbiased_linear(ra: Representation, rb: Representation, cross_sq: float) -> float:
    """Song et al.'s unbiased HSIC of K = A A^T, L = B B^T in O(N d) beyond ||A^T B||_F^2.

    On centred sets (the estimator is invariant to translating either set): with n_a = |a_i|^2,
    1'K~1 = |sum a_i|^2 - sum n_a = -sum n_a, K~1 = A (A^T 1) - n_a = -n_a, and
    sum(K~ * L~) = ||A^T B||_F^2 - sum n_a n_b."""
    m = ra.n
    na, nb = _sq_norms(ra), _sq_norms(rb)
    trace_term = cross_sq - float((na * nb).sum())
    sum_k, sum_l = -float(na.sum()), -float(nb.sum())
    row_term = float((na * nb).sum())  # (K~1) . (L~1) = (-n_a) . (-n_b)
    return _unbiased_hsic(trace_term, sum_k, sum_l, row_term, m)


def _sq_norms(r: Representation) -> torch.Tensor:
    return r.memo("centred_sq_norms", lambda: r.centred().pow(2).sum(dim=1))


def _unbiased_hsic(trace_term: float, sum_k: float, sum_l: float, row_term: float, m: int) -> float:
    """Eq. 5 of Song et al. (2012) from its four sums."""
    return (trace_term + sum_k * sum_l / ((m - 1) * (m - 2)) - 2.0 * row_term / (m - 2)) / (m * (m - 3))


# RBF kernel --------------------------------------------------------------------------------------


def rms_distance(r: Representation) -> float:
    """sqrt(mean over pairs i != j of |x_i - x_j|^2) = sqrt(2 N / (N - 1) tr(Cov)), in O(N d)."""
    def compute() -> float:
        total = float(r.centred().pow(2).sum())  # N tr(Cov_biased), in the copies' units
        return math.ldexp(math.sqrt(2.0 * total / (r.n - 1)), r.exponent) if r.n > 1 else 0.0

    return r.memo("rms_distance", compute)


def _rbf_hsic(ra: Representation, rb: Representation, unbiased: bool, sigma: float | None):
    """HSIC(K, L), HSIC(K, K), HSIC(L, L) of RBF kernels from one pass over block pairs."""
    sig_a = sigma if sigma is not None else rms_distance(ra)
    sig_b = sigma if sigma is not None else rms_distance(rb)
    if not (sig_a > 0 and sig_b > 0):  # every row of a set the same (a collapsed map): undefined
        return 0.0, 0.0, 0.0
    sig_a, sig_b = ra.in_copy_units(sig_a), rb.in_copy_units(sig_b)  # the kernels read the copies
    # One pass serves both estimators of the pair (cka_rbf and unbiased_cka_rbf).
    sums = ra.pair_memo(rb, ("rbf_sums", sig_a, sig_b), lambda: _rbf_sums(ra.centred(), rb.centred(), sig_a, sig_b))
    n = ra.n
    if unbiased:
        rk, rl = sums["row_k"] - 1.0, sums["row_l"] - 1.0  # K~1: the diagonal (exp(0) = 1) removed
        sk, sl = float(rk.sum()), float(rl.sum())
        return (
            _unbiased_hsic(sums["kl"] - n, sk, sl, float(rk @ rl), n),
            _unbiased_hsic(sums["kk"] - n, sk, sk, float(rk @ rk), n),
            _unbiased_hsic(sums["ll"] - n, sl, sl, float(rl @ rl), n),
        )
    rk, rl = sums["row_k"], sums["row_l"]
    sk, sl = float(rk.sum()), float(rl.sum())

    def biased(prod: float, r1: torch.Tensor, r2: torch.Tensor, s1: float, s2: float) -> float:
        # tr(K H L H) = sum(K * L) - 2/N (K1).(L1) + (1'K1)(1'L1)/N^2
        return prod - 2.0 / n * float(r1 @ r2) + s1 * s2 / (n * n)

    return biased(sums["kl"], rk, rl, sk, sl), biased(sums["kk"], rk, rk, sk, sk), biased(sums["ll"], rl, rl, sl, sl)


def _rbf_block(x: torch.Tensor, sq: torch.Tensor, i0: int, i1: int, j0: int, j1: int, sigma: float) -> torch.Tensor:
    d2 = (sq[i0:i1].unsqueeze(1) + sq[j0:j1].unsqueeze(0)).sub_(2.0 * (x[i0:i1] @ x[j0:j1].T)).clamp_(min=0.0)
    if i0 == j0:
        d2.fill_diagonal_(0.0)  # exactly 0: K_ii = 1 (the unbiased estimator removes it as 1)
    factor = -0.5 / sigma / sigma  # never sigma * sigma: a width of 1e-200 (in the copies' units) squares to 0
    if math.isinf(factor):  # every distinct pair infinitely many widths apart: the identity kernel
        return (d2 == 0).to(d2.dtype)
    return d2.mul_(factor).exp_()


def _rbf_sums(a: torch.Tensor, b: torch.Tensor, sig_a: float, sig_b: float) -> dict:
    """sum(K * L), sum(K * K), sum(L * L) over all (i, j), and the row sums of K and L."""
    n = a.shape[0]
    sq_a, sq_b = a.pow(2).sum(dim=1), b.pow(2).sum(dim=1)
    row_k = torch.zeros(n, dtype=torch.float64, device=a.device)
    row_l = torch.zeros_like(row_k)
    kl = kk = ll = 0.0
    for i0, i1, j0, j1, diagonal in symmetric_tiles(n, _BLOCK, _LEAF):  # off-diagonal tiles count twice
        kb, lb = _rbf_block(a, sq_a, i0, i1, j0, j1, sig_a), _rbf_block(b, sq_b, i0, i1, j0, j1, sig_b)
        weight = 1.0 if diagonal else 2.0
        kl += weight * float((kb * lb).sum())
        kk += weight * float(kb.pow(2).sum())
        ll += weight * float(lb.pow(2).sum())
        row_k[i0:i1] += kb.sum(dim=1)
        row_l[i0:i1] += lb.sum(dim=1)
        if not diagonal:
            row_k[j0:j1] += kb.sum(dim=0)
            row_l[j0:j1] += lb.sum(dim=0)
    return {"kl": kl, "kk": kk, "ll": ll, "row_k": row_k, "row_l": row_l}


# CKNNA -------------------------------------------------------------------------------------------


def _list_dots(r: Representation, k: int) -> torch.Tensor:
    """float64 <x_i, x_j> for every j in i's k-NN list, ``[N, k]``: every kernel value CKNNA
    reads from this set (computed once per set and k, so once per training for X and Y)."""
    def compute() -> torch.Tensor:
        idx = r.neighbours(k)
        out = torch.empty(idx.shape, dtype=torch.float64, device=r.x.device)
        step = max(1, (1 << 22) // max(1, k * r.dim))
        for s in range(0, r.n, step):
            rows = slice(s, s + step)
            # In the copies' units (CKNNA is invariant to scaling a set): products in range.
            neighbours = r.scaled_(r.x.index_select(0, idx[rows].reshape(-1)).view(-1, k, r.dim).double())
            queries = r.scaled_(r.x[rows].to(torch.float64, copy=True))  # never x itself, in place
            out[rows] = torch.bmm(neighbours, queries.unsqueeze(2)).squeeze(2)
        return out

    return r.memo(("list_dots", k), compute)


def _mutual_pairs(ra: Representation, rb: Representation, k: int):
    """(i, j) with j among i's k nearest in both sets, with K_ij and L_ij; the diagonal dropped
    (HSIC zeroes it)."""
    ia, ib = ra.neighbours(k), rb.neighbours(k).to(ra.x.device)
    equal = ia.unsqueeze(2) == ib.unsqueeze(1)  # [N, k, k]: a's p-th neighbour is b's q-th
    shared = equal.any(dim=2)
    in_b = equal.int().argmax(dim=2)  # where a's neighbour sits in b's list (where shared)
    rows = torch.arange(ra.n, device=ia.device).unsqueeze(1).expand_as(ia)[shared]
    cols = ia[shared]
    kv = _list_dots(ra, k)[shared]
    lv = _list_dots(rb, k).gather(1, in_b)[shared]
    keep = rows != cols
    return rows[keep], cols[keep], kv[keep], lv[keep]


def _masked_hsic_of(rows, cols, kv: torch.Tensor, lv: torch.Tensor, n: int) -> float:
    """platonic-rep's hsic_unbiased(mask * K, mask * L) for a sparse mask given as (rows, cols)."""
    keys = rows * n + cols
    # sum(K~ * L~^T) pairs (i, j) with (j, i): both in the mask (K and L are symmetric kernels).
    transposed = torch.isin(cols * n + rows, keys)
    trace_term = float((kv * lv)[transposed].sum())
    col_k = torch.zeros(n, dtype=torch.float64, device=kv.device).index_add_(0, cols, kv)
    row_l = torch.zeros(n, dtype=torch.float64, device=kv.device).index_add_(0, rows, lv)
    return _unbiased_hsic(trace_term, float(kv.sum()), float(lv.sum()), float(col_k @ row_l), n)


def _masked_hsic(ra: Representation, rb: Representation, k: int) -> float:
    rows, cols, kv, lv = _mutual_pairs(ra, rb, k)
    return _masked_hsic_of(rows, cols, kv, lv, ra.n)


def _masked_self(r: Representation, k: int) -> float:
    def compute() -> float:
        rows, cols, kv, _ = _mutual_pairs(r, r, k)
        return _masked_hsic_of(rows, cols, kv, kv, r.n)

    return r.memo(("cknna_self", k), compute)
