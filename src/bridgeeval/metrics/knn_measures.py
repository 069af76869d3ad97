"""The k-NN family of alignment measures (Huh et al. 2024, platonic-rep's ``metrics.py``), on the
exact neighbour lists of :func:`~bridgeeval.metrics.knn_indices`.

Each measure compares, item by item, the k-NN list of item i in A with its list in B:

* ``mutual_knn``: the share of the k neighbours the two lists have in common. It is mNNO exactly
  (Collell & Moens' Definition 1 is the same quantity): ``mutual_knn(a, b, k) == mnno(a, b, k)``
  under one neighbour convention.
* ``cycle_knn``: the share of items i that some B-neighbour j of i has i among its A-neighbours
  (A -> B -> A returns home).
* ``lcs_knn``: the longest common subsequence of the two *ordered* lists, divided by k.
* ``edit_distance_knn``: 1 - (Levenshtein distance of the two ordered lists) / k.

Conventions: lists are exact, nearest first, ties by lower index, self left out unless
``include_self``. platonic-rep ranks by inner product (its scripts normalise features to unit
length first, where inner product and cosine rank alike) and breaks ties in no fixed order; its
``lcs_knn`` returns the mean length (ours divides by k, so every k-NN measure lies in [0, 1]).
One search per set serves every k-NN measure of a pair: pass :class:`Representation` objects.
"""

from __future__ import annotations

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.overlap import mnno_from_indices, nn_overlap
from bridgeeval.metrics.representation import paired

_GATHER_ELEMENTS = 1 << 24  # rows x k x k indices per chunk of cycle_knn


def _lists(a, b, k: int, metric: str, include_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    ra, rb = paired(a, b, metric, include_self)
    return ra.neighbours(k), rb.neighbours(k)


def mutual_knn(a, b, k: int = 10, metric: str = "cosine", include_self: bool = False) -> float:
    """Mean share of shared neighbours, in [0, 1]: mNNO@k.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
        >>> mutual_knn(x, -x, k=1, metric="euclidean")
        1.0
    """
    return mnno_from_indices(*_lists(a, b, k, metric, include_self))


def cycle_knn(a, b, k: int = 10, metric: str = "cosine", include_self: bool = False) -> float:
    """Share of items found again among the A-neighbours of their B-neighbours, in [0, 1]."""
    return cycle_knn_from_indices(*_lists(a, b, k, metric, include_self))


def lcs_knn(a, b, k: int = 10, metric: str = "cosine", include_self: bool = False) -> float:
    """Mean longest common subsequence of the ordered k-NN lists, divided by k, in [0, 1].

    Example (lists [1, 2, 3] and [2, 1, 3] share the subsequence [1, 3] or [2, 3]):
        >>> import torch
        >>> round(lcs_from_indices(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 1, 3]])), 4)
        0.6667
    """
    return lcs_from_indices(*_lists(a, b, k, metric, include_self))


def edit_distance_knn(a, b, k: int = 10, metric: str = "cosine", include_self: bool = False) -> float:
    """1 - mean Levenshtein distance of the ordered k-NN lists / k, in [0, 1].

    Example (one substitution in three):
        >>> import torch
        >>> round(edit_from_indices(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 5, 3]])), 4)
        0.6667
    """
    return edit_from_indices(*_lists(a, b, k, metric, include_self))


def cycle_knn_from_indices(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    return float(cycle_hits(idx_a, idx_b).double().mean())


def cycle_hits(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """Per row: whether the item is among the A-neighbours of one of its B-neighbours."""
    _check_lists(idx_a, idx_b)
    n, k = idx_a.shape
    idx_b = idx_b.to(idx_a.device)
    hits = torch.empty(n, dtype=torch.bool, device=idx_a.device)
    step = max(1, _GATHER_ELEMENTS // (k * k))
    for start in range(0, n, step):
        rows = torch.arange(start, min(start + step, n), device=idx_a.device)
        back = idx_a[idx_b[rows]]  # [rows, k, k]: the A-neighbours of each B-neighbour
        hits[rows] = (back == rows.view(-1, 1, 1)).flatten(1).any(dim=1)
    return hits


def lcs_lengths(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """Per-row LCS length of two ordered lists ``[N, k]``: the classic dynamic programme, run over
    all rows at once (k^2 vector steps)."""
    _check_lists(idx_a, idx_b)
    n, k = idx_a.shape
    idx_b = idx_b.to(idx_a.device)
    prev = torch.zeros(n, k + 1, dtype=torch.int32, device=idx_a.device)
    for i in range(k):
        equal = idx_a[:, i : i + 1] == idx_b
        cur = torch.zeros_like(prev)
        for j in range(k):
            cur[:, j + 1] = torch.where(equal[:, j], prev[:, j] + 1, torch.maximum(prev[:, j + 1], cur[:, j]))
        prev = cur
    return prev[:, k]


def edit_distances(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """Per-row Levenshtein distance (insert, delete, substitute, each cost 1) of two lists ``[N, k]``."""
    _check_lists(idx_a, idx_b)
    n, k = idx_a.shape
    idx_b = idx_b.to(idx_a.device)
    prev = torch.arange(k + 1, dtype=torch.int32, device=idx_a.device).expand(n, k + 1).clone()
    for i in range(k):
        differ = (idx_a[:, i : i + 1] != idx_b).int()
        cur = torch.empty_like(prev)
        cur[:, 0] = i + 1
        for j in range(k):
            cur[:, j + 1] = torch.minimum(torch.minimum(prev[:, j + 1], cur[:, j]) + 1, prev[:, j] + differ[:, j])
        prev = cur
    return prev[:, k]


def lcs_from_indices(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    return float(lcs_lengths(idx_a, idx_b).double().mean() / idx_a.shape[1])


def edit_from_indices(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    return float(1.0 - edit_distances(idx_a, idx_b).double().mean() / idx_a.shape[1])


def _check_lists(idx_a: torch.Tensor, idx_b: torch.Tensor) -> None:
    if idx_a.shape != idx_b.shape or idx_a.ndim != 2:
        raise BridgeEvalError(
            f"neighbour lists must have the same [N, k] shape, got {tuple(idx_a.shape)} and {tuple(idx_b.shape)}"
        )


# ReSi's k-NN measures (Klabunde et al. 2024): Jaccard, rank similarity, second-order cosine ------


def jaccard_rows(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """Per row: |A_i & B_i| / |A_i | B_i| of the two k-NN sets, m / (2k - m) with m shared."""
    shared = nn_overlap(idx_a, idx_b).double()
    return shared / (2 * idx_a.shape[1] - shared)


def rank_similarity_rows(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """Per row: sum over the shared neighbours j of 2 / ((1 + |r_A(j) - r_B(j)|)(r_A(j) + r_B(j))),
    r the 1-based rank in each list, divided by its largest value for that many shared neighbours,
    the harmonic number H_m (Wang et al. 2020, as ReSi normalises it); 0 where none is shared."""
    _check_lists(idx_a, idx_b)
    n, k = idx_a.shape
    idx_b = idx_b.to(idx_a.device)
    rank = torch.arange(1, k + 1, dtype=torch.float64, device=idx_a.device)
    weight = 2.0 / ((1.0 + (rank.unsqueeze(1) - rank.unsqueeze(0)).abs()) * (rank.unsqueeze(1) + rank.unsqueeze(0)))
    harmonic = torch.cat([rank.new_zeros(1), (1.0 / rank).cumsum(0)])
    out = torch.empty(n, dtype=torch.float64, device=idx_a.device)
    step = max(1, _GATHER_ELEMENTS // (k * k))
    for start in range(0, n, step):
        equal = idx_a[start : start + step].unsqueeze(2) == idx_b[start : start + step].unsqueeze(1)
        shared = equal.sum(dim=(1, 2))
        score = (equal * weight).sum(dim=(1, 2))
        out[start : start + step] = torch.where(shared > 0, score / harmonic[shared].clamp(min=1.0), 0.0)
    return out


def jaccard_from_indices(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    return float(jaccard_rows(idx_a, idx_b).mean())


def rank_similarity_from_indices(idx_a: torch.Tensor, idx_b: torch.Tensor) -> float:
    return float(rank_similarity_rows(idx_a, idx_b).mean())


def second_order_cosine_rows(ra, rb, k: int) -> torch.Tensor:
    """Per row i: the cosine of i's distances in A and in B to the union of its two k-NN lists
    (Hamilton et al. 2016, ReSi's second-order cosine similarity), under each set's metric; NaN
    where one of the two distance vectors is all zero (duplicates of i), which the mean leaves out."""
    from bridgeeval.metrics.rsa_measures import distance_copy

    idx_a, idx_b = ra.neighbours(k), rb.neighbours(k).to(ra.x.device)
    candidates = torch.cat([idx_a, idx_b], dim=1)
    out = torch.empty(ra.n, dtype=torch.float64, device=ra.x.device)
    step = max(1, (1 << 22) // (2 * k * max(ra.dim, rb.dim)))
    for start in range(0, ra.n, step):
        rows = torch.arange(start, min(start + step, ra.n), device=ra.x.device)
        cand = candidates[rows]
        repeated = (idx_b[rows].unsqueeze(2) == idx_a[rows].unsqueeze(1)).any(dim=2)  # in both lists
        keep = torch.cat([torch.ones_like(repeated), ~repeated], dim=1)
        da, db = (_distances_to(distance_copy(r, r.metric), rows, cand).mul_(keep) for r in (ra, rb))
        denominator = da.norm(dim=1) * db.norm(dim=1)
        out[rows] = (da * db).sum(dim=1) / torch.where(denominator > 0, denominator, torch.nan)
    return out


def second_order_cosine(ra, rb, k: int) -> float:
    rows = second_order_cosine_rows(ra, rb, k)
    defined = rows[~rows.isnan()]
    return float(defined.mean()) if defined.numel() else float("nan")


def _distances_to(copy: tuple[torch.Tensor, torch.Tensor | None], rows: torch.Tensor,
                  cand: torch.Tensor) -> torch.Tensor:
    """Distances ``[len(rows), c]`` of each row to its own candidates ``cand [len(rows), c]``."""
    x, sq = copy
    dots = (x[cand] @ x[rows].unsqueeze(2)).squeeze(2)
    if sq is None:  # unit rows: cosine distance
        return dots.neg_().add_(1.0).clamp_(min=0.0)
    return (sq[rows].unsqueeze(1) + sq[cand]).sub_(dots.mul_(2.0)).clamp_(min=0.0).sqrt_()
