"""A yardstick, not for use: the alignment measures computed the way platonic-rep's ``metrics.py``
computes them (Huh et al., ICML 2024), written here from its definitions so that tests can check
``bridgeeval.metrics`` against them and ``bridgeeval bench --measures`` can time them.

Its computational form is kept: N x N kernel matrices and masks, a full ``argsort`` of the N x N
inner products for every k-NN list (self pushed last with -1e8), HSIC through explicit centring
matrices and matrix products, per-row Python dynamic programmes for LCS and edit distance, and
``1e-6`` added to the CKA and CKNNA denominators. Two departures, each because the original cannot
be matched to 1e-5 at all: SVCCA takes the exact top singular vectors (platonic-rep's
``torch.svd_lowrank`` is randomised) and adds no 1e-10 noise; ``eps`` may be set to 0 to compare
with the exact ratios bridgeeval computes. Ties in its k-NN lists fall in ``argsort``'s order:
compare on tie-free data. The original needs torchaudio (for edit distance) and pymp, which this
project does not install; this module needs only torch, numpy and, for ``svcca``, scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-6


def nearest_neighbors(feats: torch.Tensor, topk: int) -> torch.Tensor:
    return (feats @ feats.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :topk]


def mutual_knn(a: torch.Tensor, b: torch.Tensor, topk: int) -> float:
    knn_a, knn_b = nearest_neighbors(a, topk), nearest_neighbors(b, topk)
    n = knn_a.shape[0]
    rows = torch.arange(n).unsqueeze(1)
    mask_a = torch.zeros(n, n, dtype=a.dtype)
    mask_b = torch.zeros(n, n, dtype=a.dtype)
    mask_a[rows, knn_a] = 1.0
    mask_b[rows, knn_b] = 1.0
    return float(((mask_a * mask_b).sum(dim=1) / topk).mean())


def cycle_knn(a: torch.Tensor, b: torch.Tensor, topk: int) -> float:
    knn_a, knn_b = nearest_neighbors(a, topk), nearest_neighbors(b, topk)
    back = knn_a[knn_b]
    n = back.shape[0]
    return float((back == torch.arange(n).view(-1, 1, 1)).float().view(n, -1).max(dim=1).values.mean())


def _lcs(x, y) -> int:
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x[i - 1] == y[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[len(x)][len(y)]


def _levenshtein(x, y) -> int:
    prev = list(range(len(y) + 1))
    for i in range(1, len(x) + 1):
        cur = [i] + [0] * len(y)
        for j in range(1, len(y) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] != y[j - 1]))
        prev = cur
    return prev[len(y)]


def lcs_knn(a: torch.Tensor, b: torch.Tensor, topk: int) -> float:
    """The mean LCS length (platonic-rep does not divide by k)."""
    knn_a, knn_b = nearest_neighbors(a, topk).tolist(), nearest_neighbors(b, topk).tolist()
    return float(np.mean([_lcs(x, y) for x, y in zip(knn_a, knn_b)]))


def edit_distance_knn(a: torch.Tensor, b: torch.Tensor, topk: int) -> float:
    knn_a, knn_b = nearest_neighbors(a, topk).tolist(), nearest_neighbors(b, topk).tolist()
    return float(1.0 - np.mean([_levenshtein(x, y) for x, y in zip(knn_a, knn_b)]) / topk)


def hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    m = k.shape[0]
    kt, lt = k.clone().fill_diagonal_(0), l.clone().fill_diagonal_(0)
    value = (kt * lt.T).sum() + kt.sum() * lt.sum() / ((m - 1) * (m - 2)) - 2 * (kt @ lt).sum() / (m - 2)
    return value / (m * (m - 3))


def hsic_biased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    h = torch.eye(k.shape[0], dtype=k.dtype) - 1 / k.shape[0]
    return torch.trace(k @ h @ l @ h)


def cka(a, b, kernel: str = "ip", rbf_sigma: float = 1.0, unbiased: bool = False, eps: float = EPS) -> float:
    if kernel == "ip":
        k, l = a @ a.T, b @ b.T
    else:
        k = torch.exp(-torch.cdist(a, a) ** 2 / (2 * rbf_sigma**2))
        l = torch.exp(-torch.cdist(b, b) ** 2 / (2 * rbf_sigma**2))
    hsic = hsic_unbiased if unbiased else hsic_biased
    return float(hsic(k, l) / (torch.sqrt(hsic(k, k) * hsic(l, l)) + eps))


def cknna(a, b, topk: int, eps: float = EPS) -> float:
    """Unbiased, distance-aware: platonic-rep's defaults."""
    n = a.shape[0]
    k, l = a @ a.T, b @ b.T

    def similarity(k, l):
        top_k = torch.topk(k.clone().fill_diagonal_(float("-inf")), topk, dim=1).indices
        top_l = torch.topk(l.clone().fill_diagonal_(float("-inf")), topk, dim=1).indices
        mask = torch.zeros(n, n, dtype=k.dtype).scatter_(1, top_k, 1) * torch.zeros(n, n, dtype=k.dtype).scatter_(
            1, top_l, 1
        )
        return hsic_unbiased(mask * k, mask * l)

    return float(similarity(k, l)) / float(torch.sqrt(similarity(k, k) * similarity(l, l)) + eps)


def svcca(a, b, cca_dim: int = 10) -> float:
    from sklearn.cross_decomposition import CCA

    def preprocess(x):
        x = x - x.mean(dim=0)
        return x / (x.std(dim=0) + 1e-8)

    ua = torch.linalg.svd(preprocess(a), full_matrices=False).U[:, :cca_dim].numpy()
    ub = torch.linalg.svd(preprocess(b), full_matrices=False).U[:, :cca_dim].numpy()
    cca = CCA(n_components=cca_dim, max_iter=5000, tol=1e-12).fit(ua, ub)
    ca, cb = cca.transform(ua, ub)
    return float(np.mean([np.corrcoef(ca[:, i], cb[:, i])[0, 1] for i in range(cca_dim)]))


def svcca_lowrank(a, b, cca_dim: int = 10, seed: int = 0) -> float:
    """SVCCA as platonic-rep runs it: ``torch.svd_lowrank`` (randomised, q = cca_dim, 2 power
    iterations) and scikit-learn's CCA at its defaults: its value moves with the seed."""
    from sklearn.cross_decomposition import CCA

    def preprocess(x):
        x = x - x.mean(dim=0)
        return x / (x.std(dim=0) + 1e-8)

    torch.manual_seed(seed)
    ua = torch.svd_lowrank(preprocess(a), q=cca_dim)[0].numpy()
    ub = torch.svd_lowrank(preprocess(b), q=cca_dim)[0].numpy()
    ca, cb = CCA(n_components=cca_dim).fit(ua, ub).transform(ua, ub)
    return float(np.mean([np.corrcoef(ca[:, i], cb[:, i])[0, 1] for i in range(cca_dim)]))
