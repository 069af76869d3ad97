"""Topological and spectral comparisons of two sets (ReSi's RTD, IMD and Geometry Score), each
seeded, under Euclidean distances as their sources define them:

* ``rtd``, Representation Topology Divergence (Barannikov et al. 2022): on ``trials`` random
  subsets of ``batch`` paired rows, each set's distances divided by their 0.9 quantile, the total
  length of the H1 bars of the R-Cross-Barcode, the Vietoris-Rips filtration of the 2b x 2b matrix
  [[0, D_A], [D_A, min(D_A, D_B)]]; averaged over both orders and the trials. 0 for sets of the
  same shape. Bars come from ripser, which computes in float32: values agree to about 1e-6.
* ``imd``, Intrinsic Multi-scale Distance (Tsitsulin et al. 2020): each set's symmetric k-NN
  graph (Euclidean, k = ``imd_k``), the heat trace tr exp(-t L) of its normalised Laplacian at
  256 log-spaced t in [0.1, 10], divided by N and scaled by 1e6, and the largest
  exp(-2(t + 1/t)) |h_A(t) - h_B(t)|. The trace is exact (every eigenvalue) up to
  ``imd_exact_max`` items; beyond, stochastic Lanczos quadrature with ``imd_probes`` Gaussian
  probes, ``imd_lanczos_steps`` steps and the source's control variate tr(-tL) = -tN.
* ``geometry_score`` (Khrulkov & Oseledets 2018): each set's mean relative living times of
  H1 (how long the witness complex on ``gs_landmarks`` random landmarks has i holes, i < 100,
  up to alpha_max = gamma x the largest witness-landmark distance), over ``gs_repeats`` landmark
  draws; the score is the squared L2 distance of the two mean vectors. Landmarks are drawn with
  replacement, as the source does, and the same rows for both sets.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import progress
from bridgeeval.metrics.neighbours import knn_indices
from bridgeeval.metrics.representation import Representation

HEAT_TIMES = np.logspace(-1, 1, 256)
_HEAT_SCALE = 1e6  # the source's NORMALIZATION: heat traces per item, in millionths


def _needs(module: str, measure: str):
    try:
        return __import__(module)
    except ImportError:
        raise BridgeEvalError(f"measure {measure} needs {module}: pip install 'bridgeeval[topology]'") from None


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _distances(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances in float64, each pair's differences summed (no |x|^2 + |y|^2 - 2xy
    cancellation), so near-duplicate rows keep their small distances."""
    from scipy.spatial.distance import cdist, pdist, squareform

    return squareform(pdist(x)) if y is None else cdist(x, y)


# RTD -----------------------------------------------------------------------------------------


def rtd(ra: Representation, rb: Representation, trials: int = 10, batch: int = 500, seed: int = 0) -> float:
    """Representation Topology Divergence of two paired sets (0 = the same shape; larger = less alike).

    Example:
        >>> import torch
        >>> x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
        >>> from bridgeeval.metrics.representation import paired
        >>> rtd(*paired(x, 2 * x + 1), trials=2) < 1e-6  # float32 rows: rounding's tiny bars
        True
    """
    rng = np.random.default_rng(seed)
    size = min(batch, ra.n)
    total = 0.0
    for trial in range(trials):
        rows = rng.permutation(ra.n)[:size]
        da, db = _quantile_scaled(ra, rows), _quantile_scaled(rb, rows)
        total += (_cross_h1_length(da, db) + _cross_h1_length(db, da)) / 2
        progress.step("rtd", trial + 1, trials)
    return total / trials


def _quantile_scaled(r: Representation, rows: np.ndarray) -> np.ndarray:
    d = _distances(_numpy(r.centred()[torch.as_tensor(rows, device=r.x.device)]))
    scale = np.quantile(d, 0.9)
    return d / scale if scale > 0 else np.full_like(d, np.nan)


def _cross_h1_length(d1: np.ndarray, d2: np.ndarray) -> float:
    """Total H1 bar length of R-Cross-Barcode(d1, d2): Rips on [[0, d1], [d1, min(d1, d2)]]."""
    if not np.isfinite(d1).all() or not np.isfinite(d2).all():
        return math.nan
    ripser = _needs("ripser", "rtd")
    b = d1.shape[0]
    m = np.zeros((2 * b, 2 * b))
    m[b:, :b] = d1
    m[:b, b:] = d1
    m[b:, b:] = np.minimum(d1, d2)
    m[m < d1.mean() * 1e-6] = 0.0  # the source's rounding of near-zero distances
    bars = ripser.ripser(m, distance_matrix=True, maxdim=1)["dgms"][1]
    finite = bars[np.isfinite(bars[:, 1])]
    return float(np.sum(finite[:, 1].astype(np.float64) - finite[:, 0]))


# IMD -----------------------------------------------------------------------------------------


def imd(ra: Representation, rb: Representation, k: int = 5, probes: int = 1000, steps: int = 10,
        exact_max: int = 2048, seed: int = 0) -> float:
    """Intrinsic multi-scale distance of two sets (0 = the same heat traces; larger = less alike).

    Example:
        >>> import torch
        >>> x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
        >>> from bridgeeval.metrics.representation import paired
        >>> imd(*paired(x, 5 * x - 2))
        0.0
    """
    ha, hb = (heat_trace(r, k, probes, steps, exact_max, seed) for r in (ra, rb))
    weight = np.exp(-2 * (HEAT_TIMES + 1 / HEAT_TIMES))
    return float(np.max(weight * np.abs(ha - hb)))


def heat_trace(r: Representation, k: int = 5, probes: int = 1000, steps: int = 10, exact_max: int = 2048,
               seed: int = 0) -> np.ndarray:
    """tr exp(-t L) / N x 1e6 at :data:`HEAT_TIMES`, L the normalised Laplacian of the set's
    symmetric Euclidean k-NN graph; computed once per set and settings."""
    def compute() -> np.ndarray:
        laplacian = _knn_laplacian(r, k)
        if r.n <= exact_max:
            trace = _exact_heat_trace(laplacian.toarray())
        else:
            trace = _lanczos_heat_trace(laplacian, probes, steps, seed)
        return trace / r.n * _HEAT_SCALE

    return r.memo(("heat_trace", k, probes, steps, exact_max, seed), compute)


def _knn_laplacian(r: Representation, k: int):
    """I - D^-1/2 A D^-1/2, A the k-NN graph made symmetric (an edge where either row lists the other)."""
    import scipy.sparse as sp

    if k >= r.n:
        raise BridgeEvalError(f"measure imd: imd_k={k} needs more than {k} items, got {r.n}")
    lists = _numpy(knn_indices(r.x, k, "euclidean", include_self=False, name=r.name))
    rows = np.repeat(np.arange(r.n), k)
    adjacency = sp.coo_matrix((np.ones(rows.size), (rows, lists.ravel())), shape=(r.n, r.n)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    scale = sp.diags(1 / np.sqrt(np.asarray(adjacency.sum(axis=1)).ravel()))
    return (sp.identity(r.n, format="csr") - scale @ adjacency @ scale).tocsr()


def _exact_heat_trace(laplacian: np.ndarray) -> np.ndarray:
    from scipy.linalg import eigvalsh

    eig = eigvalsh(laplacian, check_finite=False)
    return np.exp(-np.outer(HEAT_TIMES, eig)).sum(axis=1)


_PROBE_CHUNK = 128  # probe vectors per Lanczos batch: N x steps x 128 float64 (100 MB at N = 10,000)


def _lanczos_heat_trace(laplacian, probes: int, steps: int, seed: int) -> np.ndarray:
    """Hutchinson's estimator with Gauss quadrature from ``steps`` Lanczos steps per probe (fully
    reorthogonalised), and the control variate tr(-tL) = -tN (L's diagonal is all ones)."""
    n = laplacian.shape[0]
    rng = np.random.default_rng(seed)
    exp_sum, lin_sum = np.zeros(len(HEAT_TIMES)), np.zeros(len(HEAT_TIMES))
    for start in range(0, probes, _PROBE_CHUNK):
        count = min(_PROBE_CHUNK, probes - start)
        nodes, weights = _lanczos_quadrature(laplacian, rng.standard_normal((n, count)), steps)
        exponent = -np.einsum("t,pj->tpj", HEAT_TIMES, nodes)
        exp_sum += (np.exp(exponent) * weights).sum(axis=(1, 2))
        lin_sum += (exponent * weights).sum(axis=(1, 2))
        progress.step("imd", start + count, probes)
    exp_trace, lin_trace = n * exp_sum / probes, n * lin_sum / probes
    return exp_trace - np.exp(-HEAT_TIMES) * (lin_trace + HEAT_TIMES * n)


def _lanczos_quadrature(laplacian, start: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights ``[probes, steps]`` of each start vector's spectral
    measure: the eigenvalues of its Lanczos tridiagonal and their eigenvectors' first entries squared."""
    n, count = start.shape
    steps = min(steps, n)
    basis = np.zeros((steps, n, count))
    alpha, beta = np.zeros((count, steps)), np.zeros((count, steps))
    q = start / np.linalg.norm(start, axis=0)
    for j in range(steps):
        basis[j] = q
        w = laplacian @ q
        alpha[:, j] = np.einsum("ip,ip->p", w, q)
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w -= np.einsum("jip,jp->ip", basis[: j + 1], np.einsum("jip,ip->jp", basis[: j + 1], w))
        norm = np.linalg.norm(w, axis=0)
        beta[:, j] = norm
        # a start vector whose Krylov space closed early: its later steps stay zero and add no weight
        q = np.divide(w, norm, out=np.zeros_like(w), where=norm > 1e-10)
    tridiagonal = np.zeros((count, steps, steps))
    idx = np.arange(steps)
    tridiagonal[:, idx, idx] = alpha
    tridiagonal[:, idx[1:], idx[:-1]] = beta[:, :-1]
    tridiagonal[:, idx[:-1], idx[1:]] = beta[:, :-1]
    nodes, vectors = np.linalg.eigh(tridiagonal)
    return nodes, vectors[:, 0, :] ** 2


# Geometry Score ------------------------------------------------------------------------------


def geometry_score(ra: Representation, rb: Representation, landmarks: int = 64, gamma: float | None = None,
                   i_max: int = 100, repeats: int = 100, seed: int = 0) -> float:
    """Squared L2 distance of the two sets' mean relative living times of H1 (0 = alike).

    Example:
        >>> import torch
        >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
        >>> from bridgeeval.metrics.representation import paired
        >>> geometry_score(*paired(x, 3 * x), repeats=5, gamma=0.1) < 1e-12
        True
    """
    ma, mb = (mean_rlt(r, landmarks, gamma, i_max, repeats, seed) for r in (ra, rb))
    return float(np.sum((ma - mb) ** 2))


def mean_rlt(r: Representation, landmarks: int = 64, gamma: float | None = None, i_max: int = 100,
             repeats: int = 100, seed: int = 0) -> np.ndarray:
    """The set's mean relative living times ``[i_max]`` over ``repeats`` landmark draws."""
    def compute() -> np.ndarray:
        gudhi = _needs("gudhi", "geometry_score")
        x = r.centred()
        g = gamma if gamma is not None else r.n / 5000 / 128  # the source's default
        rng = np.random.default_rng(seed)
        total = np.zeros(i_max)
        for rep in range(repeats):
            chosen = torch.as_tensor(rng.integers(0, r.n, landmarks), device=x.device)
            total += _rlt(gudhi, _numpy(torch.cdist(x, x[chosen])), g, i_max)
            progress.step("geometry_score", rep + 1, repeats)
        return total / repeats

    return r.memo(("mean_rlt", landmarks, gamma, i_max, repeats, seed), compute)


def _rlt(gudhi, distances: np.ndarray, gamma: float, i_max: int) -> np.ndarray:
    """One landmark draw's relative living times: the witness complex's H1 intervals (Z/2), up to
    alpha_max = gamma x the largest witness-landmark distance."""
    order = np.argsort(distances, axis=1, kind="stable")
    table = np.dstack([order, np.take_along_axis(distances, order, axis=1)])
    alpha_max = distances.max() * gamma
    tree = gudhi.WitnessComplex(table).create_simplex_tree(max_alpha_square=alpha_max, limit_dimension=2)
    tree.compute_persistence(homology_coeff_field=2)
    return relative_living_times(tree.persistence_intervals_in_dimension(1), alpha_max, i_max)


def relative_living_times(intervals, alpha_max: float, i_max: int = 100) -> np.ndarray:
    """The share of [0, alpha_max] during which exactly i intervals are alive, for i < ``i_max``
    (an interval that never dies lives to alpha_max).

    Example:
        >>> relative_living_times([[0.0, 2.0], [1.0, float("inf")]], 4.0, i_max=3).tolist()
        [0.0, 0.75, 0.25]
    """
    bars = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    bars = np.column_stack([bars[:, 0], np.where(np.isinf(bars[:, 1]), alpha_max, bars[:, 1])])
    rlt = np.zeros(i_max)
    if bars.shape[0] == 0:
        rlt[0] = 1.0
        return rlt
    edges = np.unique(np.concatenate([bars.ravel(), [0.0, alpha_max]]))
    mids = (edges[:-1] + edges[1:]) / 2
    alive = (np.searchsorted(np.sort(bars[:, 0]), mids, side="right")
             - np.searchsorted(np.sort(bars[:, 1]), mids, side="right"))
    kept = alive < i_max
    np.add.at(rlt, alive[kept], np.diff(edges)[kept])
    return rlt / alpha_max
