"""Exact k-nearest neighbours of every row of a set within the set, blockwise and on any device.

One place decides the neighbour convention of the whole project:

* distance: cosine distance ``1 - cos`` or squared Euclidean distance (same order as Euclidean);
* ties: among equal distances the lower index comes first;
* self: left out of its own list unless ``include_self=True`` (the released code's convention,
  where the query itself sits at distance 0).

How it stays exact and fast: float32 GEMMs over pairs of row blocks (each block pair once, used for
both blocks, so about half the products of a full matrix) pick ``k + margin`` candidates per row;
the candidates are rescored in float64 and sorted by (distance, index). A row is accepted only when
its k-th float64 distance lies below every unselected point's distance by more than the worst-case
float32 error; the few rows that fail are resolved against all points with a float64 rescoring of
every point the error bound cannot rule out. The result equals a float64 brute force under the tie
rule; peak extra memory is O(block^2 + N x (k + margin)), never O(N^2).

A set of at most ``_ONE_BLOCK_MAX`` rows on the CPU takes the same rule in one compiled call
after one float32 gram (:func:`_one_block_knn`): there, the many small torch calls of the general
route cost more than the search itself.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bridgeeval.metrics import progress, selection, sharding
from bridgeeval.metrics.gemm import FLOAT32_SAFE_EXPONENT, block_products, dot_error_bound, ieee_float32
from bridgeeval.metrics.tiles import diagonal_tiles
from bridgeeval.metrics.validation import as_tensor, check_k, check_metric, check_points, rowwise

_RESCORE_ELEMENTS = 1 << 22  # float64 elements per rescoring chunk (32 MiB)
_RESOLVE_ELEMENTS = 1 << 22  # slow path: query rows x points of one block's scores
_RESOLVE_PAIRS = 1 << 24  # slow path: (query, point) pairs held at once, unless one row has more
# Up to N = 1024 rows of d >= 1024, one float64 distance matrix is cheaper than float32 candidates
# and their float64 rescoring (each candidate's d-vector gathered); at lower d the candidates win.
_DENSE_MAX_N = 1024
_DENSE_MIN_D = 1024
_ONE_BLOCK_MAX = 2048  # rows searched by one gram and one compiled call (CPU): _one_block_knn
_DIAGONAL_LEAF = 256  # rows of the smallest diagonal block of the running selection
_SEARCH = "exact k-NN search"  # what the progress reports call it


@ieee_float32()
def knn_indices(
    x,
    k: int,
    metric: str = "cosine",
    include_self: bool = False,
    block_size: int | None = None,
    name: str = "x",
) -> torch.Tensor:
    """Exact ``k`` nearest neighbours of every row of ``x`` within ``x``.

    Args:
        x: ``[N, d]`` numpy array or tensor (any float dtype, any device).
        k: neighbours per row; at most ``N - 1`` (``N`` with ``include_self``).
        metric: ``"cosine"`` or ``"euclidean"``.
        include_self: count each point as its own neighbour (distance 0), as scikit-learn's
            ``kneighbors`` on the fitted set does in the paper's released code.
        block_size: rows per block; default adapts to ``N`` and the device.
        name: what error messages call ``x`` (e.g. ``"mapped"``).

    Returns:
        ``LongTensor[N, k]`` on ``x``'s device, nearest first, ties by lower index.

    Example:
        >>> import torch
        >>> pts = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
        >>> knn_indices(pts, k=2, metric="euclidean").tolist()
        [[1, 2], [0, 2], [3, 1], [2, 1]]
    """
    x = as_tensor(x, name)
    check_metric(metric)
    if block_size is None and sharding.active() is None:
        lists = _one_block_knn(x, k, metric, include_self)
        if lists is not None:
            return lists
    check_points(x, name, metric)
    n = x.shape[0]
    check_k(k, n, include_self)
    space = _Space(x, metric)
    if block_size is None and _dense_route(space):
        return _dense_knn(space, k, include_self)
    n_cand = min(n if include_self else n - 1, k + _margin(k))
    block = block_size or _default_block(n, x.device)
    exhaustive = n_cand == n - (not include_self)
    shards = sharding.active()
    if shards is not None:  # this process's share of the work; its rows refined; the lists gathered
        start, stop = shards.share(n)
        rows = torch.arange(start, stop, device=x.device)
        if n > block:
            # Its share of the block pairs (each pair once, for both sides), then each row's
            # candidates from every process meet at the process that refines the row.
            found = [shards.exchange(*_symmetric_candidates(space, n_cand, include_self, block, shards))]
        else:  # one block: its rows against the whole set
            found = [_share_candidates(space, start, stop, n_cand, include_self, block)]
        return shards.gather(_refine(space, rows, found, k, include_self, exhaustive), n)
    rows = torch.arange(n, device=x.device)
    found = [_symmetric_candidates(space, n_cand, include_self, block)]
    return _refine(space, rows, found, k, include_self, exhaustive)


@ieee_float32()
def knn_indices_of_rows(
    x,
    rows,
    k: int,
    metric: str = "cosine",
    include_self: bool = False,
    block_size: int | None = None,
) -> torch.Tensor:
    """Exact neighbours (within all of ``x``) of the selected ``rows`` only: ``LongTensor[len(rows), k]``.

    Used to estimate mNNO from a sample of query rows when N is too large for all of them.
    """
    x = as_tensor(x, "x")
    check_metric(metric)
    check_points(x, "x", metric)
    n = x.shape[0]
    check_k(k, n, include_self)
    rows = torch.as_tensor(rows, dtype=torch.long, device=x.device)
    space = _Space(x, metric)
    n_cand = min(n if include_self else n - 1, k + _margin(k))
    block = block_size or _default_block(n, x.device)
    found = [_row_candidates(space, rows, n_cand, include_self, block)]
    return _refine(space, rows, found, k, include_self, exhaustive=n_cand == n - (not include_self))


def _margin(k: int) -> int:
    # Extra candidates so that the float32 preselection rarely needs the slow path.
    return max(8, k)


def _default_block(n: int, device: torch.device) -> int:
    big = 8192 if device.type == "cuda" else 2048
    return max(1, min(n, big))


class _Space:
    """The set being searched: float32 search copy, norms, and the float32 error bound."""

    def __init__(self, x: torch.Tensor, metric: str):
        x = _in_safe_range(x, metric)
        self.x = x
        self.metric = metric
        self.n, self.dim = x.shape
        self.x32 = x if x.dtype == torch.float32 else x.float()
        # Squared norms summed directly (not norm**2), so integer-valued data keep exact ties.
        self.sq_norms64 = _row_sq_norms64(x)
        norms64 = ieee_sqrt(self.sq_norms64)
        self.norms64 = norms64
        if metric == "cosine":
            self.inv_norm32 = (1.0 / norms64).float()
        else:
            self.sq_norm32 = rowwise(lambda rows: rows.pow(2).sum(dim=1), self.x32)
        self.max_norm = float(norms64.max())
        # Worst-case error of a float32 score (dot products of length d, input rounding, scaling):
        # the products run in IEEE float32 whatever the user set (gemm.ieee_float32).
        self.gamma = dot_error_bound(self.dim)

    def search_rows(self, rows: slice | torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The float32 rows the GEMMs take: unit rows for cosine (scaled per block, never a second
        copy of the set: the block x d products are small beside the block x block x d GEMM), into
        ``out`` (its first rows) where given: a new 16 MiB block each time costs its page faults."""
        if self.metric != "cosine":
            return self.x32[rows]
        x, scale = self.x32[rows], self.inv_norm32[rows].unsqueeze(1)
        return torch.mul(x, scale) if out is None else torch.mul(x, scale, out=out[: len(x)])

    def gram(self, rows: slice | torch.Tensor, cols: slice) -> torch.Tensor:
        # torch's kernels on every device: numpy's OpenBLAS is fast alone, but its spinning threads
        # and torch's OpenMP threads then take turns on the cores.
        return block_products(self.search_rows(rows), self.search_rows(cols))

    def scores(self, gram: torch.Tensor, rows, cols) -> torch.Tensor:
        """Similarity-like scores, larger is nearer: cos (the gram of unit rows already), or
        2<q, x> - |x|^2 (= |q|^2 - dist^2)."""
        if self.metric == "cosine":
            return gram
        return gram.mul_(2.0).sub_(self.sq_norm32[cols].unsqueeze(0))

    def tolerance(self, rows: torch.Tensor) -> torch.Tensor:
        """Bound on |float32 score - exact score| for the query rows, as float64."""
        return _score_tolerance(self.gamma, self.metric, self.norms64[rows], self.max_norm)

    def distance_from_score(self, scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        s = scores.double()
        if self.metric == "cosine":
            return 1.0 - s
        return self.sq_norms64[rows].unsqueeze(1) - s

    def exact_distances(self, rows: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """float64 distances of query rows ``[R]`` to candidate indices ``[R, c]``."""
        dot = selection.pair_dots(self.x, rows, cand)
        if dot is None:
            q = self.x.index_select(0, rows).double().unsqueeze(2)
            # index_select gathers rows several times faster than advanced indexing with a 2-D index.
            vectors = self.x.index_select(0, cand.reshape(-1)).view(*cand.shape, self.dim).double()
            dot = torch.bmm(vectors, q).squeeze(2)
        return self.distances_from_dots(dot, rows, cand)

    def all_distances(self) -> torch.Tensor:
        """float64 ``[N, N]`` distances (small sets only)."""
        x = self.x.double()
        rows = torch.arange(self.n, device=x.device)
        return self.distances_from_dots(x @ x.T, rows, rows.unsqueeze(0), all_pairs=True)

    def duplicate_ids(self) -> torch.Tensor | None:
        """Ids shared by bitwise-identical rows (:func:`_duplicate_ids`), computed once."""
        if not hasattr(self, "_duplicate_ids"):
            self._duplicate_ids = _duplicate_ids(self.x, self.sq_norms64)
        return self._duplicate_ids

    def distances_from_dots(
        self, dot: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, all_pairs: bool = False
    ) -> torch.Tensor:
        """Distances from float64 dot products of ``rows`` [R] with ``cols`` ([R, c] or [1, c])."""
        if self.metric == "cosine":
            nq, nc = self.norms64[rows].unsqueeze(1), self.norms64[cols]
            dist, scale = 1.0 - dot / (nq * nc), torch.ones_like(dot)
        else:
            scale = self.sq_norms64[rows].unsqueeze(1) + self.sq_norms64[cols]
            dist = scale - 2.0 * dot
        # Products cancel for near-identical points: recompute those from differences, so that
        # duplicates sit at exactly 0 (a tie) and near-duplicates keep their order. A point's
        # distance to itself is 0 by definition and needs no recomputation.
        columns, cols = cols, cols.expand_as(dist)
        same = cols == rows.unsqueeze(1)
        dist.masked_fill_(same, 0.0)
        r, j = ((dist < 1e-6 * scale) & ~same).nonzero(as_tuple=True)
        if all_pairs and len(r) > len(rows):
            # A collapsed map (many identical outputs) flags up to N^2 pairs: identical rows are at
            # exactly 0, so they are found by their ids instead of recomputing each pair.
            ids = self.duplicate_ids()
            if ids is not None:
                identical = ids[rows[r]] == ids[cols[r, j]]
                dist[r[identical], j[identical]] = 0.0
                r, j = r[~identical], j[~identical]
        if len(r):
            a, b = self.x[rows[r]].double(), self.x[cols[r, j]].double()
            if self.metric == "cosine":
                a = a / self.norms64[rows[r]].unsqueeze(1)
                b = b / self.norms64[cols[r, j]].unsqueeze(1)
                dist[r, j] = 0.5 * (a - b).pow(2).sum(dim=1)
            else:
                dist[r, j] = (a - b).pow(2).sum(dim=1)
        dist.clamp_(min=0.0)
        ids = self.duplicate_ids()
        # The all-pairs matrix shares one set of columns ([1, N]): canonicalised with one sort.
        return dist if ids is None else _identical_at_one_distance(dist, ids[columns])


def _score_tolerance(gamma: float, metric: str, norms, max_norm: float):
    """Bound on |float32 score - exact score| per query row of norm ``norms`` (a tensor or array,
    float64): ``gamma`` for cosine (unit rows), else the error of 2<q, x> - |x|^2 over the set."""
    if metric == "cosine":
        return norms * 0.0 + gamma
    return gamma * (2.0 * norms * max_norm + max_norm**2) * 2.0


def _duplicate_ids(x: torch.Tensor, sq_norms64: torch.Tensor) -> torch.Tensor | None:
    """Ids shared by bitwise-identical rows (up to the sign of zero; every other row its own), or
    None where no two rows are identical. Identical rows have identical squared norms (each summed
    alone, in one order), so only rows whose norms collide are compared: O(N log N) where none do."""
    n = len(x)
    ordered, order = torch.sort(sq_norms64)
    collide = torch.zeros(n, dtype=torch.bool, device=x.device)
    equal = ordered[1:] == ordered[:-1]
    collide[order[1:][equal]] = True
    collide[order[:-1][equal]] = True
    if not bool(collide.any()):
        return None
    rows = collide.nonzero().squeeze(1)
    ids = torch.arange(n, device=x.device) + n  # distinct for every other row
    ids[rows] = torch.unique(x[rows], dim=0, return_inverse=True)[1]
    return ids


def _identical_at_one_distance(dist: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Each row's candidates that are bitwise-identical rows (equal ``ids``) take one distance, the
    first one's. Their exact distances are equal, but a GEMM may round the products of identical
    columns differently by position (MKL on AMD EPYC: 1 ulp apart), which would break the tie rule."""
    order = torch.sort(ids, dim=1, stable=True).indices
    ranked = ids.gather(1, order)
    starts = torch.ones_like(ranked, dtype=torch.bool)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    if bool(starts.all()):
        return dist
    positions = torch.arange(ranked.shape[1], device=dist.device).expand_as(ranked)
    group_start = torch.where(starts, positions, torch.zeros_like(positions)).cummax(dim=1).values
    # Where each candidate's first identical twin sits, back in the candidates' own order.
    first = torch.empty_like(order).scatter_(1, order, order.gather(1, group_start))
    if first.shape[0] != dist.shape[0]:  # one set of columns for every row (the all-pairs matrix)
        return dist.gather(1, first.expand_as(dist))
    return dist.gather(1, first)


def _dense_route(space: _Space) -> bool:
    """Whether all float64 distances at once beat float32 candidates and their rescoring: for
    small, wide sets only where the numba selection and rescoring are missing (with them, the
    float32 route took 0.5-0.6 of the dense one's time at 500 and 1,000 x 2,048)."""
    return space.n <= _DENSE_MAX_N and space.dim >= _DENSE_MIN_D and not _numba_route(space)


def _numba_route(space: _Space) -> bool:
    """Whether the numba running selection serves this search (CPU sets, numba installed)."""
    return space.x.device.type == "cpu" and selection.available()


def _one_block_knn(x: torch.Tensor, k: int, metric: str, include_self: bool) -> torch.Tensor | None:
    """The lists of a small CPU set (up to ``_ONE_BLOCK_MAX`` rows) from one float32 gram and one
    compiled call that selects, rescores and sorts each row (``selection.one_block``, the rule of
    :func:`_refine`): where the set fits one block, the dozens of small torch calls and temporaries
    of the general route cost more than the search (the validation hook searches f(X) every epoch).
    None where it does not apply (GPU, other dtypes, larger sets, data needing checks or scaling),
    for the general route, which also names any bad input."""
    n = x.shape[0] if x.dim() == 2 else 0
    if not (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and 2 <= n <= _ONE_BLOCK_MAX
            and x.shape[1] > 0 and selection.available()):
        return None
    cosine = metric == "cosine"
    values = x.detach().contiguous()
    sums, peaks, squares = selection.row_statistics(values.numpy())
    if not (np.isfinite(sums).all() and np.isfinite(squares).all() and (peaks.min() > 0 or not cosine)):
        return None  # the general route's checks name the row
    exponents = np.frexp(peaks if cosine else peaks.max(keepdims=True))[1]
    if (np.abs(exponents[peaks > 0] if cosine else exponents) > FLOAT32_SAFE_EXPONENT).any():
        return None  # scaled into range there
    check_k(k, n, include_self)
    norms = np.sqrt(squares)
    x32 = values.float()
    tol2 = 2.0 * _score_tolerance(dot_error_bound(x.shape[1]), metric, norms, float(norms.max()))
    if cosine:
        gram = _symmetric_gram(x32 * torch.from_numpy((1.0 / norms).astype(np.float32)).unsqueeze(1))
        alpha, beta = 1.0, np.zeros(n, np.float32)
    else:
        gram, alpha, beta = _symmetric_gram(x32), 2.0, squares.astype(np.float32)
    ordered = np.sort(squares)  # no two norms alike (the usual case): no identical rows, and no torch calls
    ids = _duplicate_ids(values, torch.from_numpy(squares)) if (ordered[1:] == ordered[:-1]).any() else None
    c = min(n if include_self else n - 1, k + _margin(k))
    out, unresolved, kth = selection.one_block(
        gram, alpha, beta, values.numpy(), squares, norms, tol2, ids, k, c, include_self, cosine,
        exhaustive=c == n - (not include_self))
    lists = torch.from_numpy(out)
    if unresolved.any():
        rows = torch.from_numpy(np.flatnonzero(unresolved))
        _resolve_rows(_Space(x, metric), torch.arange(n), rows, torch.from_numpy(kth[unresolved]), k,
                      include_self, lists)
    return lists


def _symmetric_gram(rows: torch.Tensor) -> torch.Tensor:
    """``rows @ rows.T`` from the tiles of the diagonal block (9/16 of the products from 1,024
    rows), each off-diagonal tile mirrored: products written in place, the mirror a copy."""
    n = rows.shape[0]
    gram = torch.empty(n, n, dtype=rows.dtype)
    for i0, i1, j0, j1, diagonal in diagonal_tiles(0, n, _DIAGONAL_LEAF):
        torch.mm(rows[i0:i1], rows[j0:j1].T, out=gram[i0:i1, j0:j1])
        if not diagonal:
            gram[j0:j1, i0:i1] = gram[i0:i1, j0:j1].T
    return gram


def _dense_knn(space: _Space, k: int, include_self: bool) -> torch.Tensor:
    """Small sets: all float64 distances at once, then a stable sort (index order breaks ties)."""
    dist = space.all_distances()
    dist.fill_diagonal_(0.0 if include_self else math.inf)
    c = min(space.n, k + _margin(k))
    vals, idx = _sort_exact(*torch.topk(dist, c, dim=1, largest=False))
    out = idx[:, :k]
    # A tie reaching the last selected value may hide lower indices: sort those rows fully.
    tied = (vals[:, k - 1] == vals[:, c - 1]).nonzero().squeeze(1) if c < space.n else vals.new_empty(0).long()
    if len(tied):
        out[tied] = torch.sort(dist[tied], dim=1, stable=True).indices[:, :k]
    return out


def _in_safe_range(x: torch.Tensor, metric: str) -> torch.Tensor:
    """``x`` scaled by powers of two (exact, and neighbour order is unchanged by them) into a range
    where squared norms and the float32 search copy neither overflow nor underflow: each row for
    cosine (direction only matters), the whole set for Euclidean. Data already in range is
    returned as it is, so 1e160 * X gives the neighbours of X instead of infinities."""
    peaks = rowwise(lambda rows: rows.abs().amax(dim=1), x).unsqueeze(1)
    peak = peaks if metric == "cosine" else peaks.amax().reshape(1, 1)
    exponent = torch.frexp(peak.double())[1]
    finite_peak = peak > 0
    if not bool(((exponent.abs() > FLOAT32_SAFE_EXPONENT) & finite_peak).any()):
        return x
    shift = torch.where(finite_peak, -exponent, torch.zeros_like(exponent))
    return x * torch.pow(2.0, shift.double()).to(x.dtype)


def ieee_sqrt(t: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square roots, as IEEE 754 and a float64 brute force have them. torch's CPU
    kernel is within 0.5001 ulp, not exact: on an AVX-512 machine 0.7% of float64 roots came out
    one ulp off (sqrt(0.5) among them), so rows of one direction tied in one route and not in the
    other. numpy's roots (the hardware's) are exact; CUDA's float64 roots are correctly rounded."""
    if t.device.type != "cpu":
        return t.sqrt()
    return torch.from_numpy(np.sqrt(t.detach().contiguous().numpy()))


def _row_sq_norms64(x: torch.Tensor) -> torch.Tensor:
    return rowwise(lambda rows: rows.double().pow(2).sum(dim=1), x)  # not in place: float64 x is its own .double()


class _Candidates:
    """The top ``c`` float32 scores per row seen so far, kept as pieces (one ``topk`` per block)
    and merged only when several have gathered: one concatenation and ``topk`` per few blocks,
    not one per block."""

    _MERGE_EVERY = 8

    def __init__(self, c: int, rows: int = 0, device: torch.device | None = None):
        self.c, self.rows, self.device = c, rows, device
        self.pieces: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, scores: torch.Tensor, col0: int) -> None:
        s, i = torch.topk(scores, min(self.c, scores.shape[1]), dim=1, sorted=False)
        self.pieces.append((s, i.add_(col0)))
        if len(self.pieces) >= self._MERGE_EVERY:
            self.pieces = [self.result()]

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[rows, c]`` scores and indices; where a shared search showed the rows fewer than ``c``
        points (or none), the rest are -inf placeholders, which the merge over processes drops."""
        if len(self.pieces) == 1:
            top, idx = self.pieces[0]
        elif self.pieces:
            s = torch.cat([p[0] for p in self.pieces], dim=1)
            i = torch.cat([p[1] for p in self.pieces], dim=1)
            top, pos = torch.topk(s, min(self.c, s.shape[1]), dim=1, sorted=False)
            idx = torch.gather(i, 1, pos)
        else:
            top = torch.empty((self.rows, 0), device=self.device)
            idx = torch.empty((self.rows, 0), dtype=torch.long, device=self.device)
        missing = self.c - top.shape[1]
        # Alone, every row sees all N >= c points; a process sharing the search may see fewer.
        if missing > 0 and self.rows:
            top = torch.cat([top, top.new_full((len(top), missing), -math.inf)], dim=1)
            idx = torch.cat([idx, idx.new_zeros((len(idx), missing))], dim=1)
        return top, idx


def _symmetric_candidates(space: _Space, c: int, include_self: bool, block: int,
                          shards: sharding.Shards | None = None):
    """Top-``c`` float32 candidates per row, visiting each pair of row blocks once; with ``shards``,
    only this process's share of the block pairs (rows that meet none of them: -inf placeholders)."""
    # One block too (the validation hook's sets): one running pass beats topk's full selection.
    if _numba_route(space):
        return _symmetric_candidates_running(space, c, include_self, block, shards)
    n = space.n
    rank, world = (shards.rank, shards.world) if shards is not None else (0, 1)
    starts = list(range(0, n, block))
    found = [_Candidates(c, min(i0 + block, n) - i0, space.x.device) for i0 in starts]
    task = -1
    for a, i0 in enumerate(starts):
        i1 = min(i0 + block, n)
        rows = space.search_rows(slice(i0, i1))
        for b in range(a, len(starts)):
            task += 1
            if task % world != rank:
                continue
            j0 = starts[b]
            j1 = min(j0 + block, n)
            gram = block_products(rows, space.search_rows(slice(j0, j1))) if b != a else block_products(rows, rows)
            if space.metric == "cosine":
                s_rows = gram
                s_cols = gram.T
            else:
                s_cols = (2.0 * gram.T).sub_(space.sq_norm32[i0:i1].unsqueeze(0))
                s_rows = space.scores(gram, slice(i0, i1), slice(j0, j1))
            if a == b:
                # Self: forced in (so it is rescored at distance 0) or kept out of its own list.
                s_rows.fill_diagonal_(math.inf if include_self else -math.inf)
                found[a].add(s_rows, j0)
                continue
            found[a].add(s_rows, j0)
            found[b].add(s_cols.contiguous(), i0)
        progress.step(_SEARCH, a + 1, len(starts))  # row blocks: each later one has fewer pairs
    parts = [f.result() for f in found]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _symmetric_candidates_running(space: _Space, c: int, include_self: bool, block: int,
                                  shards: sharding.Shards | None = None):
    """The same candidates by one running selection per row over both sides of each block pair,
    read in place (metrics.selection): no ``topk`` and no transposed copy per block. With
    ``shards``, this process takes every ``world``-th of the tasks (diagonal blocks, then block
    pairs) and its candidates cover only the pairs it visited (merged by ``Shards.exchange``)."""
    n = space.n
    found = selection.RunningTopC(n, c)
    euclidean = space.metric == "euclidean"
    alpha = 2.0 if euclidean else 1.0

    def shifts(start: int, stop: int) -> torch.Tensor | None:  # |x|^2 of the block's points, for Euclidean
        return space.sq_norm32[start:stop] if euclidean else None

    def pair(i0: int, j0: int, rows: torch.Tensor, cols: torch.Tensor) -> None:
        gram = block_products(rows, cols)
        found.add_rows(gram, i0, j0, shifts(j0, j0 + len(cols)), alpha)
        found.add_columns(gram, i0, j0, shifts(i0, i0 + len(rows)), alpha)

    def diagonal(b0: int, rows: torch.Tensor) -> None:
        # Its tiles (metrics.tiles) cost 9/16 of the block's whole product (GEMMs of 256 rows run
        # nearly as fast as of 2,048).
        for i0, i1, j0, j1, leaf in diagonal_tiles(b0, b0 + len(rows), _DIAGONAL_LEAF):
            part = rows[i0 - b0 : i1 - b0]
            if leaf:
                found.add_rows(block_products(part, part), i0, i0, shifts(i0, i1), alpha, diagonal=True,
                               include_self=include_self)
            else:
                pair(i0, j0, part, rows[j0 - b0 : j1 - b0])

    bounds = [(i0, min(i0 + block, n)) for i0 in range(0, n, block)]
    # The row and column blocks' search rows, written again for each block (fresh ones would cost
    # page faults on every block).
    row_buffer, col_buffer = (torch.empty(block, space.dim, device=space.x.device) for _ in range(2))
    # Diagonal blocks first: every row's kept scores are then high before the other blocks, whose
    # scores mostly fall below them and are skipped a chunk at a time.
    tasks = len(bounds) * (len(bounds) + 1) // 2
    rank, world = (shards.rank, shards.world) if shards is not None else (0, 1)
    mine = [t % world == rank for t in range(tasks)]  # round robin: diagonals spread, pairs alike
    total, done, task = sum(mine), 0, -1
    for i0, i1 in bounds:
        task += 1
        if mine[task]:
            diagonal(i0, space.search_rows(slice(i0, i1), row_buffer))
            done += 1
            progress.step(_SEARCH, done, total)
    for a, (i0, i1) in enumerate(bounds):
        rows = None
        for j0, j1 in bounds[a + 1 :]:
            task += 1
            if not mine[task]:
                continue
            if rows is None:
                rows = space.search_rows(slice(i0, i1), row_buffer)
            pair(i0, j0, rows, space.search_rows(slice(j0, j1), col_buffer))
            done += 1
            progress.step(_SEARCH, done, total)
    return found.result()


def _share_candidates(space: _Space, start: int, stop: int, c: int, include_self: bool, block: int):
    """Top-``c`` float32 candidates of the rows ``[start, stop)`` against all points: by the running
    selection on the CPU (each column block read once per row block, the block holding the rows
    first so that later blocks are mostly skipped), else by ``topk`` per block."""
    if not _numba_route(space):
        return _row_candidates(space, torch.arange(start, stop, device=space.x.device), c, include_self, block)
    n, euclidean = space.n, space.metric == "euclidean"
    found = selection.RunningTopC(stop - start, c)
    row_buffer, col_buffer = (torch.empty(block, space.dim, device=space.x.device) for _ in range(2))
    for q0 in range(start, stop, block):
        q1 = min(q0 + block, stop)
        rows = space.search_rows(slice(q0, q1), row_buffer)
        col_starts = sorted(range(0, n, block), key=lambda j0: not (j0 <= q0 < j0 + block))
        for j0 in col_starts:
            j1 = min(j0 + block, n)
            gram = block_products(rows, space.search_rows(slice(j0, j1), col_buffer))
            lo, hi = max(q0, j0), min(q1, j1)  # rows whose own column is in this block
            if lo < hi:
                own = torch.arange(lo, hi, device=space.x.device)
                gram[own - q0, own - j0] = math.inf if include_self else -math.inf
            found.add_rows(gram, q0 - start, j0, space.sq_norm32[j0:j1] if euclidean else None,
                           2.0 if euclidean else 1.0)
        progress.step(_SEARCH, q1 - start, stop - start)
    return found.result()


def _row_candidates(space: _Space, rows: torch.Tensor, c: int, include_self: bool, block: int):
    """Top-``c`` float32 candidates for selected query rows against all points."""
    n = space.n
    parts = []
    for r0 in range(0, len(rows), block):
        q = rows[r0 : r0 + block]
        found = _Candidates(c)
        for j0 in range(0, n, block):
            j1 = min(j0 + block, n)
            s = space.scores(space.gram(q, slice(j0, j1)), q, slice(j0, j1))
            own = (q >= j0) & (q < j1)
            s[own.nonzero().squeeze(1), q[own] - j0] = math.inf if include_self else -math.inf
            found.add(s, j0)
        parts.append(found.result())
        progress.step(_SEARCH, min(r0 + block, len(rows)), len(rows))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _sort_exact(dist: torch.Tensor, idx: torch.Tensor):
    """Sorts each row by (distance, index): index order first, then a stable sort on distance."""
    idx, pos = torch.sort(idx, dim=1)
    dist = torch.gather(dist, 1, pos)
    dist, pos = torch.sort(dist, dim=1, stable=True)
    return dist, torch.gather(idx, 1, pos)


def _refine(space, rows, found: list, k, include_self, exhaustive: bool) -> torch.Tensor:
    """The exact lists from the float32 candidates (``found``: a list holding the one pair of
    scores and indices, emptied here so that each N x c copy is freed as soon as it is used: at
    N = 10^6 they are most of the search's memory), rescoring in float64 only what float32 cannot
    decide.

    With float32 scores sorted, s_k the k-th and t the error bound: two points whose float32 scores
    are more than 2t apart are in that order exactly, so a row whose first k + 1 scores are each
    more than 2t apart has its exact list already. For the other rows: the k best float32 points
    score at least s_k - t exactly, and any point below s_k - 2t in float32 scores below s_k - t
    exactly, so the exact top k lies among the candidates within 2t of s_k. Only the candidates
    that float32 cannot place are rescored in float64 (those within 2t of a neighbour in the first
    k + 1, and those within 2t of s_k beyond); every other one keeps its float32 distance, which
    is more than t from every rescored one it could swap with, so one sort by (distance, index)
    gives the exact order. When even the last candidate is within 2t of s_k, an unselected point
    could be too: that row takes the slow path.
    """
    cand_scores, cand = found.pop()
    scores, pos = torch.sort(cand_scores, dim=1, descending=True)
    del cand_scores
    cand = torch.gather(cand, 1, pos)
    del pos
    out = cand[:, :k].clone()
    tol2 = 2.0 * space.tolerance(rows).unsqueeze(1)
    s64 = scores.double()
    del scores
    if include_self:
        # Self is forced in at +inf; its exact score is the largest possible (cos 1, or |q|^2), and a
        # duplicate of q at that score comes first when its index is lower: compare against that.
        top = torch.ones_like(rows, dtype=torch.float64) if space.metric == "cosine" else space.sq_norms64[rows]
        s64[:, 0] = torch.where(cand[:, 0] == rows, top, s64[:, 0])
    # With no (k+1)-th candidate every point is one (the margin keeps c above k otherwise), so the
    # gaps within the first k decide alone.
    head = s64[:, : k + 1]
    close = (head[:, :-1] - head[:, 1:]) <= tol2  # the gap after each of the first k positions
    unsure = close.any(dim=1).nonzero().squeeze(1)
    if len(unsure):
        _rescore(space, rows, unsure, cand[unsure], s64[unsure], close[unsure], tol2[unsure], k, include_self,
                 exhaustive, out)
    return out


def _rescore(space, all_rows, positions, cand, s64, close, tol2, k, include_self, exhaustive, out) -> None:
    """float64 distances of the candidates float32 cannot place, for the rows at ``positions`` (of
    ``all_rows``), by chunks of rows with similar counts; rows that need it go on to the slow path."""
    rows = all_rows[positions]
    within = s64 >= (s64[:, k - 1 : k] - tol2)
    need = within.clone()
    gaps = close.shape[1]  # k, or k - 1 where the k candidates are every point
    need[:, :gaps] = close
    need[:, 1 : gaps + 1] |= close
    counts = need.sum(dim=1)
    width = int(within.sum(dim=1).max())  # candidates that can be in the top k (at least k)
    keys = space.distance_from_score(s64[:, :width], rows)
    ranked = torch.argsort(counts)  # chunks of rows needing about as many rescorings
    # Each row's needed positions first (stable: in score order), so a chunk gathers only those.
    slots = torch.sort(need[:, :width].to(torch.int8), dim=1, descending=True, stable=True).indices
    step = max(1, _RESCORE_ELEMENTS // (max(1, int(counts.max())) * space.dim))
    for r0 in range(0, len(rows), step):
        part = ranked[r0 : r0 + step]
        w = int(counts[part].max())
        at = slots[part, :w]
        c = cand[part].gather(1, at)
        q = rows[part]
        dist = space.exact_distances(q, c)
        if include_self:
            dist[c == q.unsqueeze(1)] = 0.0
        chunk_keys = keys[part]
        chunk_keys.scatter_(1, at, torch.where(need[part].gather(1, at), dist, chunk_keys.gather(1, at)))
        keys[part] = chunk_keys
    _, order = _sort_exact(keys, cand[:, :width])
    out[positions] = order[:, :k]
    if not exhaustive:
        bad = within[:, -1].nonzero().squeeze(1)
        if len(bad):
            kth = torch.sort(keys[bad], dim=1).values[:, k - 1]
            _resolve_rows(space, all_rows, positions[bad], kth, k, include_self, out)


def _resolve_rows(space, rows, positions, kth, k, include_self, out) -> None:
    """Slow path, for rows whose candidates all lie within the float32 error of their k-th: every
    point the float32 bound cannot rule out is rescored in float64. Rows go by chunks, so a set
    with many such rows (large groups of identical points) takes a few GEMMs, not one per row."""
    queries = rows[positions]
    limits = kth + space.tolerance(queries)
    block = _default_block(space.n, space.x.device)
    per_chunk = max(1, _RESOLVE_ELEMENTS // block)
    pending = [(r0, min(r0 + per_chunk, len(queries))) for r0 in range(0, len(queries), per_chunk)]
    while pending:
        r0, r1 = pending.pop()
        found = _within(space, queries[r0:r1], limits[r0:r1], include_self, block,
                        budget=_RESOLVE_PAIRS if r1 - r0 > 1 else None)
        if found is None:  # too many points close to these rows to hold at once: half as many rows
            middle = (r0 + r1) // 2
            pending += [(r0, middle), (middle, r1)]
            continue
        out[positions[r0:r1]] = _exact_lists(space, queries[r0:r1], *found, k)


def _within(space, q, limit, include_self, block, budget):
    """(row in ``q``, point) of every point whose float32 distance to a query of ``q`` is at most
    its ``limit``, itself counted only with ``include_self``; rows in order, points ascending.
    None once more than ``budget`` pairs are found, or the rows padded to the longest would be."""
    found_r, found_j, count = [], [], 0
    for j0 in range(0, space.n, block):
        cols = slice(j0, min(j0 + block, space.n))
        approx = space.distance_from_score(space.scores(space.gram(q, cols), q, cols), q)
        keep = approx <= limit.unsqueeze(1)
        own = ((q >= cols.start) & (q < cols.stop)).nonzero().squeeze(1)
        keep[own, q[own] - j0] = include_self
        r, j = keep.nonzero(as_tuple=True)
        count += len(r)
        if budget is not None and count > budget:
            return None
        found_r.append(r)
        found_j.append(j + j0)
    r, j = torch.cat(found_r), torch.cat(found_j)
    if budget is not None and len(q) * int(torch.bincount(r, minlength=len(q)).max()) > budget:
        return None
    order = torch.sort(r, stable=True).indices
    return r[order], j[order]


def _exact_lists(space, q, r, cand, k) -> torch.Tensor:
    """The first ``k`` by exact (distance, index) of each query's points ``cand`` (pairs ``r``)."""
    step = max(1, _RESCORE_ELEMENTS // space.dim)  # pairs whose float64 vectors fit one chunk
    dist = torch.cat([space.exact_distances(q[r[s : s + step]], cand[s : s + step].unsqueeze(1)).squeeze(1)
                      for s in range(0, len(r), step)])
    # One row of points per query, padded with the query itself at +inf (last in the sort).
    counts = torch.bincount(r, minlength=len(q))
    slot = torch.arange(len(r), device=r.device) - (counts.cumsum(0) - counts)[r]
    table = q.unsqueeze(1).repeat(1, int(counts.max()))
    table[r, slot] = cand
    keys = torch.zeros(table.shape, dtype=torch.float64, device=r.device)
    keys[r, slot] = dist
    ids = space.duplicate_ids()
    if ids is not None:  # identical points at one distance, as in a row of candidates
        keys = _identical_at_one_distance(keys, ids[table])
    pad = torch.ones(table.shape, dtype=torch.bool, device=r.device)
    pad[r, slot] = False
    _, order = _sort_exact(keys.masked_fill_(pad, math.inf), table)
    return order[:, :k]
