"""The numba kernels of the exact search: the running selection of :mod:`bridgeeval.metrics.selection`
and the float64 rescoring of chosen pairs (``pair_dots``) of :mod:`bridgeeval.metrics.neighbours`
(imported on first use: importing numba costs about 0.3 s)."""

from __future__ import annotations

import numba
import numpy as np

_CHUNK = 16  # scores compared against a row's threshold at once


def _compiled(function=None, **options):
    """``function`` compiled in parallel, cached on disk where numba finds a writable place (next to
    this file, else the user's cache directory); compiled per process where it finds none."""
    if function is None:
        return lambda f: _compiled(f, **options)
    try:
        return numba.njit(parallel=True, cache=True, boundscheck=False, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available" (read-only install and home)
        return numba.njit(parallel=True, boundscheck=False, **options)(function)


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
def pair_dots(x, rows, cand, out):
    """``out[r, t] = <x[rows[r]], x[cand[r, t]]>`` in float64, the rows read in place. Reassociation
    lets the sum vectorise; the products of float32 values are exact in float64, and a float64 sum
    in any order is within (d - 1) u64 sum |x_i y_i|, as a float64 GEMM's is."""
    n_rows, width = cand.shape
    dim = x.shape[1]
    for r in numba.prange(n_rows):
        q = x[rows[r]]
        for t in range(width):
            v = x[cand[r, t]]
            total = 0.0
            for i in range(dim):
                total += np.float64(q[i]) * np.float64(v[i])
            out[r, t] = total
