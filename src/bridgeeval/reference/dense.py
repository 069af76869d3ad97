"""A yardstick, not for use: ReSi's, netrep's and rsatoolbox's measures written plainly from their
papers' definitions with numpy, scipy and scikit-learn, N x N matrices and all, so that tests can
check ``bridgeeval.metrics`` against them and ``bridgeeval bench --measures`` can time them.

Each function takes two float arrays ``[N, d]`` (any widths) and returns a float. Neighbours come
from scikit-learn's exact search (cosine, self left out): compare on tie-free data.
"""

from __future__ import annotations

import numpy as np


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)


def _centre(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


def _padded(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = max(a.shape[1], b.shape[1])
    pad = lambda x: np.hstack([x, np.zeros((x.shape[0], width - x.shape[1]))])  # noqa: E731
    return pad(a), pad(b)


def knn_lists(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x)[1][:, 1:]


def jaccard_knn(a, b, k: int) -> float:
    la, lb = knn_lists(_np(a), k), knn_lists(_np(b), k)
    return float(np.mean([len(set(p) & set(q)) / len(set(p) | set(q)) for p, q in zip(la, lb, strict=True)]))


def rank_similarity(a, b, k: int) -> float:
    la, lb = knn_lists(_np(a), k), knn_lists(_np(b), k)
    scores = []
    for p, q in zip(la, lb, strict=True):
        shared = set(p) & set(q)
        if not shared:
            scores.append(0.0)
            continue
        total = 0.0
        for j in shared:
            rp, rq = list(p).index(j) + 1, list(q).index(j) + 1
            total += 2.0 / ((1 + abs(rp - rq)) * (rp + rq))
        scores.append(total / sum(1.0 / t for t in range(1, len(shared) + 1)))
    return float(np.mean(scores))


def second_order_cosine(a, b, k: int) -> float:
    from scipy.spatial.distance import cosine
    from sklearn.metrics import pairwise_distances

    a, b = _np(a), _np(b)
    la, lb = knn_lists(a, k), knn_lists(b, k)
    da, db = pairwise_distances(a, metric="cosine"), pairwise_distances(b, metric="cosine")
    return float(np.mean([1.0 - cosine(da[i, sorted(set(p) | set(q))], db[i, sorted(set(p) | set(q))])
                          for i, (p, q) in enumerate(zip(la, lb, strict=True))]))


def magnitude_difference(a, b) -> float:
    return abs(float(np.linalg.norm(_np(a).mean(axis=0)) - np.linalg.norm(_np(b).mean(axis=0))))


def concentricity_difference(a, b) -> float:
    from sklearn.metrics.pairwise import cosine_similarity

    def concentricity(x):
        return float(cosine_similarity(x, x.mean(axis=0, keepdims=True)).mean())

    return abs(concentricity(_np(a)) - concentricity(_np(b)))


def uniformity_difference(a, b) -> float:
    from scipy.spatial.distance import cdist

    def uniformity(x):
        return float(np.log(np.exp(-2.0 * cdist(x, x, "sqeuclidean")).mean()))

    return abs(uniformity(_np(a)) - uniformity(_np(b)))


def rsm_norm_difference(a, b) -> float:
    from scipy.spatial.distance import cdist

    a, b = _np(a), _np(b)
    return float(np.linalg.norm(cdist(a, a) - cdist(b, b), "fro"))


def eigenspace_overlap(a, b) -> float:
    """The ranks by ``matrix_rank`` of the arrays as given (a float32 array: float32's eps), as ReSi calls it."""
    rank_a, rank_b = (np.linalg.matrix_rank(np.asarray(x.numpy() if hasattr(x, "numpy") else x)) for x in (a, b))
    a, b = _np(a), _np(b)
    ua = np.linalg.svd(a, full_matrices=False)[0][:, :rank_a]
    ub = np.linalg.svd(b, full_matrices=False)[0][:, :rank_b]
    return float(np.linalg.norm(ua.T @ ub, "fro") ** 2 / max(a.shape[1], b.shape[1]))


def linear_regression(a, b) -> float:
    """R^2 of the least-squares fit of the centred A from the centred B."""
    a, b = _centre(_np(a)), _centre(_np(b))
    coef = np.linalg.lstsq(b, a, rcond=None)[0]
    return float(1.0 - np.linalg.norm(a - b @ coef) ** 2 / np.linalg.norm(a) ** 2)


def gulp(a, b, lam: float = 0.0) -> float:
    """||H_A - H_B||_F^2 with the ridge hat matrices of the centred sets scaled to norm sqrt(N)."""
    def hat(x):
        x = _centre(_np(x))
        n = x.shape[0]
        x = np.sqrt(n) * x / np.linalg.norm(x)
        inner = x.T @ x + n * lam * np.eye(x.shape[1])
        return x @ (np.linalg.pinv(inner, hermitian=True) if lam == 0 else np.linalg.inv(inner)) @ x.T

    return float(np.linalg.norm(hat(a) - hat(b), "fro") ** 2)


def pwcca(a, b) -> float:
    """Morcos et al. 2018: canonical directions of A from the eigenproblem
    S_aa^-1 S_ab S_bb^-1 S_ba w = rho^2 w, variates h = A w (unit), weights sum_j |<h, a_j>|."""
    a, b = _centre(_np(a)), _centre(_np(b))
    saa, sbb, sab = a.T @ a, b.T @ b, a.T @ b
    values, vectors = np.linalg.eig(np.linalg.solve(saa, sab) @ np.linalg.solve(sbb, sab.T))
    order = np.argsort(-values.real)[: min(a.shape[1], b.shape[1])]
    rho = np.sqrt(np.clip(values.real[order], 0.0, 1.0))
    h = a @ vectors.real[:, order]
    h /= np.linalg.norm(h, axis=0)
    weights = np.abs(h.T @ a).sum(axis=1)
    return float((weights * rho).sum() / weights.sum())


def procrustes_angular(a, b) -> float:
    from scipy.linalg import orthogonal_procrustes

    a, b = _padded(_centre(_np(a)), _centre(_np(b)))
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    q = orthogonal_procrustes(a, b)[0]
    return float(np.arccos(np.clip(np.trace(q.T @ a.T @ b), -1.0, 1.0)))


def procrustes_size_shape(a, b) -> float:
    from scipy.linalg import orthogonal_procrustes

    a, b = _padded(_centre(_np(a)), _centre(_np(b)))
    return float(np.linalg.norm(a @ orthogonal_procrustes(a, b)[0] - b))


def aligned_cosine(a, b) -> float:
    from scipy.linalg import orthogonal_procrustes

    a, b = _padded(_np(a), _np(b))
    rotated = a @ orthogonal_procrustes(a, b)[0]
    cos = (rotated * b).sum(axis=1) / (np.linalg.norm(rotated, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.mean())


def permutation_procrustes(a, b) -> float:
    from scipy.optimize import linear_sum_assignment

    a, b = _padded(_np(a), _np(b))
    rows, cols = linear_sum_assignment(a.T @ b, maximize=True)
    return float(np.linalg.norm(a[:, rows] - b[:, cols]))


def _column_correlations(a, b) -> np.ndarray:
    a, b = _np(a), _np(b)
    return np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:]


def hard_correlation_match(a, b) -> float:
    from scipy.optimize import linear_sum_assignment

    corr = _column_correlations(a, b)
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return float(corr[rows, cols].mean())


def soft_correlation_match(a, b) -> float:
    corr = _column_correlations(a, b)
    return float((corr.max(axis=1).mean() + corr.max(axis=0).mean()) / 2.0)


def distance_correlation(a, b) -> float:
    import dcor

    return float(dcor.distance_correlation(_np(a), _np(b)))


def rsa_comparator(a, b, method: str) -> float:
    """rsatoolbox's comparison (``"cosine"``, ``"rho-a"``, ``"tau-a"``, ``"cosine_cov"``, ``"corr_cov"``)
    of the cosine-distance RDMs."""
    import rsatoolbox
    from scipy.spatial.distance import pdist

    rdms = [rsatoolbox.rdm.RDMs(pdist(_np(x), "cosine")[None, :]) for x in (a, b)]
    return float(rsatoolbox.rdm.compare(rdms[0], rdms[1], method=method)[0, 0])
