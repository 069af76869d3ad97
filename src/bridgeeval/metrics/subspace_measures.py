"""Subspace, CCA, regression and Procrustes comparisons: SVCCA (Raghu et al. 2017), PWCCA,
eigenspace overlap, linear regression, GULP, the Procrustes family (the distance of the centred unit
sets, the angular shape metric, size-and-shape, permutation Procrustes, aligned cosine) and the
correlation matches. The ReSi measures' definitions are in their functions' docstrings; two below.

* ``svcca``: each set centred and scaled per dimension (platonic-rep's preprocessing: divided by
  its standard deviation + 1e-8), reduced to its top ``cca_dim`` left singular vectors, then the
  mean canonical correlation of the two reduced sets. The canonical correlations of two centred
  orthonormal bases U_a, U_b are the singular values of U_a^T U_b, so no iterative CCA is needed.
  platonic-rep finds the singular vectors with ``torch.svd_lowrank`` (randomised, q = cca_dim, so
  approximate and seed-dependent) and the CCA with scikit-learn's iterative ``CCA``; we compute the
  exact top singular vectors (the top eigenpairs of the smaller Gram matrix, float64).
* ``procrustes``: both sets centred and scaled to unit Frobenius norm; the distance
  min_R ||A - B R||_F over orthogonal R (semi-orthogonal when the widths differ: the narrower set
  padded with zero columns) is sqrt(2 - 2 ||A^T B||_*), with ||.||_* the nuclear norm
  (Schönemann 1966; the shape metric of Williams et al. 2021). 0 for sets equal up to rotation,
  translation and scale; at most sqrt(2). Lower is more similar.
"""

from __future__ import annotations

import math

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.linalg import gram, top_eigh
from bridgeeval.metrics.representation import Representation, paired
from bridgeeval.metrics.scaling import range_exponent, scale_down_


def svcca(a, b, cca_dim: int = 10) -> float:
    """Mean canonical correlation of the top ``cca_dim`` singular directions of each set, in [0, 1].

    Example (an invertible linear map keeps the same subspace):
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 12, generator=g, dtype=torch.float64)
        >>> round(svcca(x, x, cca_dim=5), 6)
        1.0
    """
    ra, rb = paired(a, b)
    ua, ub = _top_directions(ra, cca_dim), _top_directions(rb, cca_dim)
    if ua is None or ub is None:
        return float("nan")  # a set with fewer independent directions (a collapsed map): undefined
    rho = torch.linalg.svdvals(ua.T @ ub).clamp_(max=1.0)
    return float(rho.mean())


def procrustes(a, b) -> float:
    """Orthogonal Procrustes distance of the centred, unit-norm sets, in [0, sqrt(2)].

    Example (a rotated, shifted, rescaled copy is at distance 0):
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(30, 3, generator=g, dtype=torch.float64)
        >>> q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
        >>> procrustes(x, 2 * x @ q + 1) < 1e-6
        True
    """
    ra, rb = paired(a, b)
    # ||A^T B||_* / (||A||_F ||B||_F) on the centred sets: no unit-norm copies.
    scale = _frobenius(ra) * _frobenius(rb)
    if scale == 0.0:
        return float("nan")  # every row of a set the same vector (a collapsed map): no shape to compare
    return math.sqrt(max(0.0, 2.0 - 2.0 * _nuclear(ra, rb) / scale))


def _narrow(r: Representation) -> torch.Tensor:
    """The centred set A, or where it is wider than tall (d > N) the N x N factor R^T of A^T = Q R:
    A = R^T Q^T with Q's columns orthonormal, so A^T B and (R_a^T)^T B share their singular values
    and the SVD is at most N x N (a 128-item fold in 1,280 dimensions: 128^2 instead of 1,280^2)."""
    def compute() -> torch.Tensor:
        c = r.centred()
        return c if r.dim <= r.n else torch.linalg.qr(c.T, mode="r").R.T

    return r.memo("procrustes_narrow", compute)


def _frobenius(r: Representation) -> float:
    return r.memo("centred_frobenius", lambda: float(torch.linalg.matrix_norm(r.centred())))


def _top_left_vectors(r: Representation, q: int) -> torch.Tensor | None:
    """The top ``q`` left singular vectors of the standardised set X (columns centred, divided by
    their std + 1e-8) from the smaller Gram matrix, orthonormal to rounding; None where X has fewer
    than ``q`` independent directions.

    A tall set never builds X: with ``D`` the columns' scales, ``X^T X = D^-1 C^T C D^-1`` and
    ``U = X V / S = C (D^-1 V) / S``, and the columns' variances are the diagonal of ``C^T C`` over
    N - 1 (what ``std`` gives, to rounding)."""
    c = r.centred()  # in the copies' units (x / 2^e, within 2^+-100): its Gram matrix in range
    eps = _platonic_epsilon(r)
    wide = r.dim > r.n
    if wide:  # X X^T = U S^2 U^T, N x N (U is its eigenvectors: X's own scale does not matter)
        x = c / (c.std(dim=0) + eps)  # tiny where the 1e-8 dwarfs the stds: put in range
        g = gram(scale_down_(x, range_exponent(x)), rows=True)
    else:  # X^T X = V S^2 V^T, d x d
        g = gram(c, rows=False)
        scale = g.diagonal().div(r.n - 1).clamp_(min=0.0).sqrt_().add_(eps)
        # Over a power of two near the largest (exact; U's scale goes in its QR): G / scale^2 in range.
        scale.mul_(2.0 ** -int(torch.frexp(scale.max())[1]))
        g.div_(scale.unsqueeze(1)).div_(scale.unsqueeze(0))
    values, vectors = top_eigh(g, q)
    if not float(values[-1]) > 0 or not bool((values > values[-1] * 1e-12).all()):
        return None
    return vectors if wide else (c @ (vectors / scale.unsqueeze(1))) / values.sqrt()


def _platonic_epsilon(r: Representation) -> float:
    """platonic-rep's 1e-8 beside each column's std, in the copies' units. For a set of magnitudes
    below 2^-900, scaled up by more than 2^900, it is capped at 2^100: the copies' stds are at most
    1 then, so either value dwarfs them alike and the directions do not change."""
    return r.in_copy_units(1e-8) if r.exponent > -900 else 2.0**100


def _top_directions(r: Representation, q: int) -> torch.Tensor | None:
    """The top ``q`` left singular vectors ``[N, q]`` of the standardised set (orthonormal, centred);
    None where the set has fewer than ``q`` independent directions."""
    if q < 1:
        raise BridgeEvalError(f"cca_dim must be a positive integer, got {q!r}")
    if q > min(r.n - 1, r.dim):
        raise BridgeEvalError(
            f"svcca with cca_dim={q} needs more than {q} items and at least {q} dimensions; "
            f"{r.name} is {r.n} x {r.dim}"
        )

    def compute() -> torch.Tensor:
        u = _top_left_vectors(r, q)
        # Re-orthonormalised (eigenvectors of a Gram matrix are orthonormal to rounding only).
        return None if u is None else torch.linalg.qr(u).Q

    return r.memo(("svcca_directions", q), compute)


# Orthonormal bases: eigenspace overlap, linear regression, GULP, PWCCA -------------------------


def basis(r: Representation, centred: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """An orthonormal basis ``[N, rank]`` of the set's column space (of the centred set where
    ``centred``) and the matching singular values (the copies' units), largest first.

    The rank counts singular values above ``s_max * max(N, d) * eps`` with the storage's eps,
    numpy's ``matrix_rank`` rule (which takes a float32 array's eps too): a float32 set of rank 64
    has 64, not 64 plus its rounding noise. A tall set is reduced by a QR first (the SVD is then
    d x d)."""
    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        m = r.centred() if centred else r.float64_copy()
        if r.dim <= r.n:
            q, upper = torch.linalg.qr(m)
            u, s, _ = torch.linalg.svd(upper)
            u = q @ u
        else:
            u, s, _ = torch.linalg.svd(m, full_matrices=False)
        if s.numel() == 0 or float(s[0]) == 0.0:
            return u[:, :0], s[:0]
        eps = torch.finfo(r.x.dtype if r.x.dtype.is_floating_point else torch.float64).eps
        rank = int((s > s[0] * max(m.shape) * eps).sum())
        return u[:, :rank], s[:rank]

    return r.memo(("basis", centred), compute)


def eigenspace_overlap(a, b) -> float:
    """||U_a^T U_b||_F^2 / max(d_a, d_b), U the left singular vectors of the (uncentred) sets'
    non-zero singular values (May et al. 2019), in [0, 1].

    Example (an invertible linear map keeps the column space):
        >>> import torch
        >>> x = torch.randn(40, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> round(eigenspace_overlap(x, x @ torch.tensor([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 3, 1], [1, 0, 0, 1]],
        ...                                             dtype=torch.float64)), 6)
        1.0
    """
    ra, rb = paired(a, b)
    ua, ub = basis(ra, centred=False)[0], basis(rb, centred=False)[0]
    return float((ua.T @ ub).pow(2).sum()) / max(ra.dim, rb.dim)


def linear_regression(a, b) -> float:
    """Share of the centred A's variance that a linear map of the centred B explains: the R^2
    ||P_B A||_F^2 / ||A||_F^2 of regressing A on B (Kornblith et al. 2019), in [0, 1]. Not
    symmetric: B is the regressor."""
    ra, rb = paired(a, b)
    ub = basis(rb, centred=True)[0]
    ca = ra.centred()
    total = float(ca.pow(2).sum())
    return float((ub.T @ ca).pow(2).sum()) / total if total > 0 else float("nan")


def gulp(a, b, lam: float = 0.0) -> float:
    """GULP (Boix-Adsera et al. 2022): the squared distance between the two sets' ridge-regression
    predictors, ||H_a - H_b||_F^2 with H = X (X^T X + N lam I)^-1 X^T of each set centred and
    scaled to Frobenius norm sqrt(N) (ReSi's preprocessing). At lam = 0 it is
    rank_a + rank_b - 2 ||U_a^T U_b||_F^2, the distance of the projections onto the column spaces."""
    ra, rb = paired(a, b)
    if lam < 0:
        raise BridgeEvalError(f"gulp's lambda must be >= 0, got {lam!r}")
    (ua, sa), (ub, sb) = basis(ra, centred=True), basis(rb, centred=True)
    wa, wb = _ridge_weights(sa, lam), _ridge_weights(sb, lam)
    cross = (ua.T @ ub).pow_(2)
    return float(wa.pow(2).sum() + wb.pow(2).sum() - 2.0 * (wa @ cross @ wb))


def _ridge_weights(s: torch.Tensor, lam: float) -> torch.Tensor:
    """The hat matrix's eigenvalues e / (e + lam), e = s^2 / ||X||_F^2 (the covariance's eigenvalues
    of the set scaled to ||X||_F^2 = N)."""
    if lam == 0.0:
        return torch.ones_like(s)
    e = s.pow(2) / s.pow(2).sum()
    return e / (e + lam)


def pwcca(a, b) -> float:
    """Projection-weighted CCA (Morcos et al. 2018), in [0, 1]: the canonical correlations rho_i of
    the centred sets, weighted by alpha_i = sum_j |<h_i, a_j>|, h_i A's unit canonical variates and
    a_j A's centred columns. Not symmetric: the weights are A's."""
    ra, rb = paired(a, b)
    ua, ub = basis(ra, centred=True)[0], basis(rb, centred=True)[0]
    if ua.shape[1] == 0 or ub.shape[1] == 0:
        return float("nan")
    p, rho, _ = torch.linalg.svd(ua.T @ ub, full_matrices=False)
    variates = ua @ p  # [N, min(rank_a, rank_b)], orthonormal
    weights = (variates.T @ ra.centred()).abs_().sum(dim=1)
    return float((weights * rho.clamp(max=1.0)).sum() / weights.sum())


# Procrustes and matching: shape metrics of Williams et al. 2021 and ReSi's relatives --------------


def _nuclear(ra: Representation, rb: Representation) -> float:
    """||A^T B||_* of the centred copies (the copies' units)."""
    return ra.pair_memo(rb, "centred_nuclear",
                        lambda: float(torch.linalg.svdvals(_narrow(ra).T @ _narrow(rb)).sum()))


def procrustes_angular(a, b) -> float:
    """The angular shape metric (Williams et al. 2021): arccos of ||A^T B||_* / (||A||_F ||B||_F)
    on the centred sets, in [0, pi/2]; 0 for sets equal up to rotation, translation and scale."""
    ra, rb = paired(a, b)
    scale = _frobenius(ra) * _frobenius(rb)
    if scale == 0.0:
        return float("nan")
    return math.acos(min(1.0, max(-1.0, _nuclear(ra, rb) / scale)))


def procrustes_size_shape(a, b) -> float:
    """The size-and-shape Procrustes distance: min over orthogonal R of ||A - B R||_F on the centred
    (not rescaled) sets, sqrt(||A||^2 + ||B||^2 - 2 ||A^T B||_*), in the sets' own units."""
    ra, rb = paired(a, b)
    fa, fb = math.ldexp(_frobenius(ra), ra.exponent), math.ldexp(_frobenius(rb), rb.exponent)
    nuclear = math.ldexp(_nuclear(ra, rb), ra.exponent + rb.exponent)
    return math.sqrt(max(0.0, fa * fa + fb * fb - 2.0 * nuclear))


def aligned_cosine(a, b) -> float:
    """Mean cosine of each row of A R with its row of B, R the orthogonal Procrustes map of the
    (uncentred) A onto B (ReSi's aligned cosine similarity). Rows zero in either set are left out."""
    ra, rb = paired(a, b)
    xa, xb = ra.float64_copy(), rb.float64_copy()
    u, _, vh = torch.linalg.svd(xa.T @ xb, full_matrices=False)
    # With the narrower set zero-padded R is orthogonal: rows keep their norms, so each cosine is
    # <a_i R, b_i> / (|a_i| |b_i|) with the thin R = U V^T.
    dots = ((xa @ u) @ vh * xb).sum(dim=1)
    norms = xa.norm(dim=1) * xb.norm(dim=1)
    kept = norms > 0
    if not bool(kept.any()):
        return float("nan")
    return float((dots[kept] / norms[kept]).mean())


def permutation_procrustes(a, b) -> float:
    """min over permutations P of the columns of ||A - B P||_F (the narrower set zero-padded), on
    the sets as given (not centred, not rescaled), in their own units."""
    from scipy.optimize import linear_sum_assignment

    ra, rb = paired(a, b)
    xa, xb = ra.float64_copy(), rb.float64_copy()
    cross = (xa.T @ xb).cpu().numpy()
    rows, cols = linear_sum_assignment(cross, maximize=True)
    matched = math.ldexp(float(cross[rows, cols].sum()), ra.exponent + rb.exponent)
    fa, fb = math.ldexp(float(xa.norm()), ra.exponent), math.ldexp(float(xb.norm()), rb.exponent)
    return math.sqrt(max(0.0, fa * fa + fb * fb - 2.0 * matched))


def _column_correlations(ra: Representation, rb: Representation) -> torch.Tensor:
    """Pearson correlations ``[d_a, d_b]`` of every column of A with every column of B; a constant
    column correlates 0 with everything (scikit-learn's cosine of a zero vector, as ReSi has it)."""
    def compute() -> torch.Tensor:
        ca, cb = ra.centred(), rb.centred()
        na, nb = ca.norm(dim=0), cb.norm(dim=0)
        na, nb = torch.where(na > 0, na, torch.inf), torch.where(nb > 0, nb, torch.inf)
        return (ca.T @ cb).div_(na.unsqueeze(1)).div_(nb.unsqueeze(0))

    return ra.pair_memo(rb, "column_correlations", compute)


def hard_correlation_match(a, b) -> float:
    """Mean correlation of the columns matched one to one (the assignment of largest total
    correlation; Li et al. 2015), in [-1, 1]."""
    from scipy.optimize import linear_sum_assignment

    ra, rb = paired(a, b)
    corr = _column_correlations(ra, rb).cpu().numpy()
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return float(corr[rows, cols].mean())


def soft_correlation_match(a, b) -> float:
    """Mean over the columns of each set of their best correlation with a column of the other,
    averaged over both directions (Li et al. 2015), in [-1, 1]."""
    ra, rb = paired(a, b)
    corr = _column_correlations(ra, rb)
    return float((corr.amax(dim=1).mean() + corr.amax(dim=0).mean()) / 2.0)
