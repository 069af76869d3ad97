"""Subspace comparisons: SVCCA (Raghu et al. 2017) and the orthogonal Procrustes distance.

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
    cross = _narrow(ra).T @ _narrow(rb)
    nuclear = float(torch.linalg.svdvals(cross).sum()) / scale
    return math.sqrt(max(0.0, 2.0 - 2.0 * nuclear))


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
