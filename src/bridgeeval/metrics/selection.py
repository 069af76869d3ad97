"""Running top-``c`` selection of float32 scores on the CPU: one pass over each product block that
keeps, per row, the ``c`` best scores seen so far.

``torch.topk`` over every block was most of the exact search's time at low dimensions (about 2 ns
an element for wide rows and 5 for rows of a few hundred; a transposed copy per block for the column
side of symmetric blocks), where the GEMM is cheap. Here both sides of a block are read in place:
a chunk of 16 scores is skipped at once unless its maximum beats the row's current c-th best, which
after the first block is almost always true (about 0.3 ns an element). The kernels are compiled by
numba (a wheel from the package index, no compiler needed) on first use and cached on disk; without
numba the caller keeps ``torch.topk``.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; kept optional for odd platforms
    numba = None

_CHUNK = 16  # scores compared against a row's threshold at once


def available() -> bool:
    return numba is not None


class RunningTopC:
    """The ``c`` best float32 scores (and their column indices) of each of ``n`` rows, fed block by
    block: :meth:`add_rows` for the rows of a block, :meth:`add_columns` for its columns (the
    symmetric half of a block pair, without a transposed copy)."""

    def __init__(self, n: int, c: int):
        self.values = np.full((n, c), -np.inf, dtype=np.float32)
        self.indices = np.full((n, c), -1, dtype=np.int64)

    def add_rows(self, scores: torch.Tensor, row0: int, col0: int, beta: torch.Tensor | None = None,
                 alpha: float = 1.0, diagonal: bool = False, include_self: bool = False) -> None:
        """Rows ``row0 ..`` see columns ``col0 ..`` with scores ``alpha * scores[i, j] - beta[j]``;
        on a ``diagonal`` block the row's own column is skipped, or forced in when ``include_self``."""
        block = _numpy(scores)
        _rows_pass(block, np.float32(alpha), _beta(beta, block.shape[1]), row0, col0, self.values, self.indices,
                   diagonal, include_self)

    def add_columns(self, scores: torch.Tensor, row0: int, col0: int, beta: torch.Tensor | None = None,
                    alpha: float = 1.0) -> None:
        """Columns ``col0 ..`` (as rows of the result) see rows ``row0 ..`` with scores
        ``alpha * scores[i, j] - beta[i]``."""
        block = _numpy(scores)
        threads = max(1, min(numba.get_num_threads(), block.shape[1] // 64))
        _columns_pass(block, np.float32(alpha), _beta(beta, block.shape[0]), row0, col0, self.values,
                      self.indices, threads)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.values), torch.from_numpy(self.indices)


def _numpy(scores: torch.Tensor) -> np.ndarray:
    return scores.detach().contiguous().numpy()


def _beta(beta: torch.Tensor | None, size: int) -> np.ndarray:
    return np.zeros(size, dtype=np.float32) if beta is None else beta.contiguous().numpy()


if numba is not None:

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

    @numba.njit(parallel=True, cache=True, boundscheck=False)
    def _rows_pass(block, alpha, beta, row0, col0, values, indices, diagonal, include_self):
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

    @numba.njit(parallel=True, cache=True, boundscheck=False)
    def _columns_pass(block, alpha, beta, row0, col0, values, indices, threads):
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
