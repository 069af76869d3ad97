"""The numba kernels of the exact search: the running selection of :mod:`bridgeeval.metrics.selection`
and the float64 rescoring of chosen pairs (``pair_dots``) of :mod:`bridgeeval.metrics.neighbours`
and of retrieval's ranking (imported on first use: importing numba costs about 0.3 s)."""

from __future__ import annotations

import numba
import numpy as np

_CHUNK = 16  # scores compared against a row's threshold at once


def _compiled(function=None, **options):
    """``function`` compiled in parallel, cached on disk where numba finds a writable place (next to
    this file, else the user's cache directory); compiled per process where it finds none."""
    if function is None:
        return lambda f: _compiled(f, **options)
    options = {"parallel": True, "boundscheck": False, **options}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available" (read-only install and home)
        return numba.njit(**options)(function)


@numba.njit(inline="always", boundscheck=False)
def _lowest(values):
    """Value and position of the lowest of a row's ``c`` kept scores (a linear scan: with c
    about 20 it beats a heap's unpredictable sift-down)."""
    pos, low = 0, values[0]
    for t in range(1, values.shape[0]):
        if values[t] < low:
            low, pos = values[t], t
    return low, pos


@numba.njit(inline="always", boundscheck=False)
def _chunk_best(line, beta, start, alpha):
    best = alpha * line[start] - beta[start]
    for u in range(1, _CHUNK):  # a constant trip count: unrolled and vectorised
        best = max(best, alpha * line[start + u] - beta[start + u])
    return best


@_compiled
def rows_pass(block, alpha, beta, row0, col0, values, indices, diagonal, include_self):
    rows, cols = block.shape
    whole = cols - cols % _CHUNK
    for r in numba.prange(rows):
        kept, ids = values[row0 + r], indices[row0 + r]
        low, pos = _lowest(kept)
        line = block[r]
        for start in range(0, cols, _CHUNK):
            stop = min(start + _CHUNK, cols)
            own = diagonal and start <= r < stop
            if start < whole and not own and _chunk_best(line, beta, start, alpha) <= low:
                continue
            for j in range(start, stop):
                score = alpha * line[j] - beta[j]
                if own and j == r:
                    if not include_self:
                        continue
                    score = np.float32(np.inf)  # forced in, rescored at distance 0
                if score > low:
                    kept[pos], ids[pos] = score, col0 + j
                    low, pos = _lowest(kept)


@_compiled
def columns_pass(block, alpha, beta, row0, col0, values, indices, threads):
    rows, cols = block.shape
    step = -(-cols // threads)
    step += -step % _CHUNK  # whole chunks per thread
    for part in numba.prange(threads):
        first, last = part * step, min(cols, (part + 1) * step)
        if first >= last:
            continue
        low = np.empty(last - first, dtype=np.float32)  # each column's c-th best so far
        at = np.empty(last - first, dtype=np.int64)
        for j in range(first, last):
            low[j - first], at[j - first] = _lowest(values[col0 + j])
        whole = first + (last - first) - (last - first) % _CHUNK
        for i in range(rows):
            line = block[i]
            shift = beta[i]
            for start in range(first, last, _CHUNK):
                if start < whole:
                    hit = False
                    for u in range(_CHUNK):  # constant trip count: vectorised
                        hit |= alpha * line[start + u] - shift > low[start + u - first]
                    if not hit:
                        continue
                for j in range(start, min(start + _CHUNK, last)):
                    score = alpha * line[j] - shift
                    if score > low[j - first]:
                        kept = values[col0 + j]
                        kept[at[j - first]], indices[col0 + j, at[j - first]] = score, row0 + i
                        low[j - first], at[j - first] = _lowest(kept)


@_compiled(fastmath={"reassoc", "contract"})
def pair_dots(x, rows, y, cand, out):
    """``out[r, t] = <x[rows[r]], y[cand[r, t]]>`` in float64, the rows read in place. Reassociation
    lets the sum vectorise; the products of float32 values are exact in float64, and a float64 sum
    in any order is within (d - 1) u64 sum |x_i y_i|, as a float64 GEMM's is."""
    n_rows, width = cand.shape
    dim = x.shape[1]
    for r in numba.prange(n_rows):
        q = x[rows[r]]
        for t in range(width):
            v = y[cand[r, t]]
            total = 0.0
            for i in range(dim):
                total += np.float64(q[i]) * np.float64(v[i])
            out[r, t] = total


@_compiled
def row_statistics(x, sums, peaks, squares):
    """Per row, in one pass read in place: the float64 sum (finite exactly when the row is, for
    float32 data), the largest magnitude, and the float64 sum of squares (each row alone, in one
    order: identical rows get identical values)."""
    n, dim = x.shape
    for r in numba.prange(n):
        row = x[r]
        total, peak, square = 0.0, 0.0, 0.0
        for i in range(dim):
            v = np.float64(row[i])
            total += v
            peak = max(peak, abs(v))
            square += v * v
        sums[r], peaks[r], squares[r] = total, peak, square


@numba.njit(fastmath={"reassoc", "contract"}, boundscheck=False)
def _dot64(a, b):
    total = 0.0
    for i in range(a.shape[0]):
        total += np.float64(a[i]) * np.float64(b[i])
    return total


@numba.njit(boundscheck=False)
def _exact_distance(x, i, j, squares, norms, cosine):
    """float64 distance of points ``i`` and ``j``, as ``_Space.distances_from_dots``: from the dot
    product, recomputed from differences where products cancel (near-identical points)."""
    if i == j:
        return 0.0
    dot = _dot64(x[i], x[j])
    if cosine:
        dist, scale = 1.0 - dot / (norms[i] * norms[j]), 1.0
    else:
        scale = squares[i] + squares[j]
        dist = scale - 2.0 * dot
    if dist < 1e-6 * scale:
        total = 0.0
        for t in range(x.shape[1]):
            if cosine:
                diff = np.float64(x[i, t]) / norms[i] - np.float64(x[j, t]) / norms[j]
            else:
                diff = np.float64(x[i, t]) - np.float64(x[j, t])
            total += diff * diff
        dist = 0.5 * total if cosine else total
    return max(dist, 0.0)


@numba.njit(inline="always", boundscheck=False)
def _before(key_a, idx_a, key_b, idx_b):
    return key_a < key_b or (key_a == key_b and idx_a < idx_b)


@numba.njit(inline="always", boundscheck=False)
def _swap(values, ids, a, b):
    values[a], values[b] = values[b], values[a]
    ids[a], ids[b] = ids[b], ids[a]


@numba.njit(boundscheck=False)
def _select_top(values, ids, m, c):
    """Moves the ``c`` largest of ``values[:m]`` (their ``ids`` alongside) to the front, in no
    order: quickselect in place, median-of-three pivots."""
    lo, hi = 0, m - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] > values[lo]:
            _swap(values, ids, mid, lo)
        if values[hi] > values[lo]:
            _swap(values, ids, hi, lo)
        if values[mid] > values[hi]:
            _swap(values, ids, mid, hi)
        pivot, store = values[hi], lo  # the median of the three, at hi
        for t in range(lo, hi):
            if values[t] > pivot:
                _swap(values, ids, t, store)
                store += 1
        _swap(values, ids, store, hi)
        if store == c - 1 or store == c:
            return
        if store < c:
            lo = store + 1
        else:
            hi = store - 1


@numba.njit(boundscheck=False)
def _best_of_row(line, alpha, beta, i, c, include_self):
    """The ``c`` best scores ``alpha * line[j] - beta[j]`` of row ``i`` (self at +inf, or left out),
    best first, as float64, with their columns. Split into ``c`` groups of columns, each holds a
    score at least its own maximum, so the least of the groups' maxima is a floor that ``c``
    distinct scores reach: only the scores at or above it (a few times c in a row) go on to a
    quickselect and an insertion sort."""
    n = line.shape[0]
    floor = np.float32(np.inf)
    for g in range(c):
        start, stop = g * n // c, (g + 1) * n // c
        best = np.float32(-np.inf)
        for j in range(start, stop):
            best = max(best, alpha * line[j] - beta[j])
        if start <= i < stop:  # the row's own score: forced in, or left out of its group's maximum
            best = np.float32(np.inf) if include_self else np.float32(-np.inf)
            if not include_self:
                for j in range(start, stop):
                    if j != i:
                        best = max(best, alpha * line[j] - beta[j])
        floor = min(floor, best)
    kept = np.empty(n, dtype=np.float32)
    cols = np.empty(n, dtype=np.int64)
    m = 0
    for j in range(n):  # without branches: every score written, the count moved past those kept
        score = alpha * line[j] - beta[j]
        if j == i:
            if not include_self:
                continue
            score = np.float32(np.inf)
        kept[m], cols[m] = score, j
        m += score >= floor
    if m > c:
        _select_top(kept, cols, m, c)
    s64 = np.empty(c, dtype=np.float64)
    cand = np.empty(c, dtype=np.int64)
    for p in range(c):
        v, w = np.float64(kept[p]), cols[p]
        q = p - 1
        while q >= 0 and s64[q] < v:
            s64[q + 1], cand[q + 1] = s64[q], cand[q]
            q -= 1
        s64[q + 1], cand[q + 1] = v, w
    return s64, cand


@_compiled
def one_block(gram, alpha, beta, x, squares, norms, tol2, ids, k, c, include_self, cosine, exhaustive,
              out, unresolved, kth):
    """The exact lists of a set searched as one block, a row per thread: the top ``c`` float32
    scores ``alpha * gram[i, j] - beta[j]`` (self forced in at +inf, or skipped), then
    ``neighbours._refine``'s rule on them: float64 rescoring of the candidates float32 cannot
    place, identical points (equal ``ids``; all distinct where ``ids`` is empty) at one distance,
    and a sort by (distance, index). Rows whose every candidate lies within the error of their
    k-th are marked ``unresolved`` with that k-th distance: the caller takes them further."""
    n = gram.shape[0]
    for i in numba.prange(n):
        s64, cand = _best_of_row(gram[i], alpha, beta, i, c, include_self)
        if include_self and cand[0] == i:  # self's exact score, cos 1 or |q|^2: a lower-index twin precedes it
            s64[0] = 1.0 if cosine else squares[i]
        gaps = min(k, c - 1)
        close = np.zeros(c, dtype=np.bool_)
        unsure = False
        for p in range(gaps):
            close[p] = s64[p] - s64[p + 1] <= tol2[i]
            unsure |= close[p]
        if not unsure:
            for p in range(k):
                out[i, p] = cand[p]
            continue
        floor = s64[k - 1] - tol2[i]
        width = 0
        while width < c and s64[width] >= floor:
            width += 1
        keys = np.empty(width, dtype=np.float64)
        done = np.zeros(width, dtype=np.bool_)
        for p in range(width):
            keys[p] = 1.0 - s64[p] if cosine else squares[i] - s64[p]
            need = close[p] if p < gaps else True
            if p >= 1 and p <= gaps:
                need |= close[p - 1]
            if need:
                keys[p] = _exact_distance(x, i, cand[p], squares, norms, cosine)
                done[p] = True
                if ids.shape[0]:  # the first rescored identical point's distance, in score order
                    for q in range(p):
                        if done[q] and ids[cand[q]] == ids[cand[p]]:
                            keys[p] = keys[q]
                            break
        # By (distance, index): insertion sort of the width candidates.
        for p in range(1, width):
            v, w = keys[p], cand[p]
            q = p - 1
            while q >= 0 and _before(v, w, keys[q], cand[q]):
                keys[q + 1], cand[q + 1] = keys[q], cand[q]
                q -= 1
            keys[q + 1], cand[q + 1] = v, w
        for p in range(k):
            out[i, p] = cand[p]
        if not exhaustive and width == c:
            unresolved[i], kth[i] = True, keys[k - 1]
