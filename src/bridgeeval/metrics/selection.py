"""Running top-``c`` selection of float32 scores on the CPU: one pass over each product block that
keeps, per row, the ``c`` best scores seen so far.

``torch.topk`` over every block was most of the exact search's time at low dimensions (about 2 ns
an element for wide rows and 5 for rows of a few hundred; a transposed copy per block for the column
side of symmetric blocks), where the GEMM is cheap. Here both sides of a block are read in place:
a chunk of 16 scores is skipped at once unless its maximum beats the row's current c-th best, which
after the first block is almost always true (about 0.3 ns an element). The kernels are compiled by
numba (a wheel from the package index, no compiler needed) on first use and cached on disk; without
numba the caller keeps ``torch.topk``. numba is imported on the first search that uses it (a cost
once per process).

For a set of one block, :func:`row_statistics` and :func:`one_block` do the whole search after its
one gram: checks and norms in one pass, then per row the selection, the float64 rescoring and the
sort (``neighbours._one_block_knn``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

_PAIR_DOTS_MIN_WORK = 1 << 25  # multiply-adds (torch's gather and bmm: about 0.13 s) worth numba's import
_kernels = None  # bridgeeval.metrics._selection_kernels once imported; False where numba is missing


def available() -> bool:
    """Whether the numba kernels can run here (imports them on the first call)."""
    global _kernels
    if _kernels is None:
        _size_numba_pool(torch.get_num_threads())
        try:
            from bridgeeval.metrics import _selection_kernels as kernels
        except ImportError:  # numba is a dependency; kept optional for platforms without its wheels
            kernels = False
        _kernels = kernels
    return _kernels is not False


def _size_numba_pool(threads: int) -> None:
    """numba's thread pool sized to torch's thread budget before numba is imported: processes
    sharing a machine (torchrun sets OMP_NUM_THREADS=1) would otherwise each keep one pool thread
    per core, which spin between kernels and took 2-3x a shared search's time. Where another
    library imported numba first, its configuration is left as it is (numba re-reads the variable
    at every compilation and raises once it no longer matches a started pool) and ``RunningTopC``
    uses fewer of the pool's threads instead."""
    if "NUMBA_NUM_THREADS" not in os.environ and "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)


def pair_dots(x: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor, y: torch.Tensor | None = None
              ) -> torch.Tensor | None:
    """float64 ``[R, c]`` dot products of ``x[rows[r]]`` with ``y[cand[r, t]]`` (``y``: ``x`` where
    not given), read in place (no gathered float64 copies of the candidates: 10x faster than
    ``index_select`` and ``bmm`` for the rescoring of a 10,000 x 2,048 search); None where the
    kernel cannot take the sets (not contiguous float32 or float64 CPU tensors of one dtype, or
    numba missing): the caller computes them itself."""
    y = x if y is None else y
    usable = all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.is_contiguous()
                 for t in (x, y)) and x.dtype == y.dtype
    # numba's import only for work that repays it, or once it is loaded anyway (by any search
    # on the CPU's numba route): small work in a process without it keeps torch's gather.
    worth = _kernels is not None or cand.numel() * x.shape[1] >= _PAIR_DOTS_MIN_WORK
    if not (usable and worth and available()):
        return None
    out = np.empty(tuple(cand.shape), dtype=np.float64)
    _kernels.pair_dots(x.detach().numpy(), rows.contiguous().numpy(), y.detach().numpy(),
                       cand.contiguous().numpy(), out)
    return torch.from_numpy(out)


def row_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a float32 or float64 array, read once in place: float64 sum, largest magnitude,
    float64 sum of squares. Needs :func:`available`."""
    n = x.shape[0]
    sums, peaks, squares = np.empty(n), np.empty(n), np.empty(n)
    _use_torch_threads()
    _kernels.row_statistics(x, sums, peaks, squares)
    return sums, peaks, squares


def one_block(gram: torch.Tensor, alpha: float, beta: np.ndarray, x: np.ndarray, squares: np.ndarray,
              norms: np.ndarray, tol2: np.ndarray, ids: torch.Tensor | None, k: int, c: int,
              include_self: bool, cosine: bool, exhaustive: bool):
    """``_selection_kernels.one_block``: ``[N, k]`` lists, the unresolved rows' mask and their k-th
    distances."""
    n = gram.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    unresolved, kth = np.zeros(n, dtype=np.bool_), np.zeros(n)
    no_ids = np.empty(0, dtype=np.int64)
    _use_torch_threads()
    _kernels.one_block(_numpy(gram), np.float32(alpha), beta, x, squares, norms, tol2,
                       no_ids if ids is None else ids.numpy(), k, c, include_self, cosine, exhaustive,
                       out, unresolved, kth)
    return out, unresolved, kth


def _use_torch_threads() -> None:
    """torch's thread budget, where numba was imported before available() could size its pool."""
    numba = _kernels.numba
    numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, torch.get_num_threads())))


class RunningTopC:
    """The ``c`` best float32 scores (and their column indices) of each of ``n`` rows, fed block by
    block: :meth:`add_rows` for the rows of a block, :meth:`add_columns` for its columns (the
    symmetric half of a block pair, without a transposed copy). Needs :func:`available`."""

    def __init__(self, n: int, c: int):
        if not available():
            raise RuntimeError("the running selection needs numba")
        _use_torch_threads()
        self.values = np.full((n, c), -np.inf, dtype=np.float32)
        self.indices = np.full((n, c), -1, dtype=np.int64)

    def add_rows(self, scores: torch.Tensor, row0: int, col0: int, beta: torch.Tensor | None = None,
                 alpha: float = 1.0, diagonal: bool = False, include_self: bool = False) -> None:
        """Rows ``row0 ..`` see columns ``col0 ..`` with scores ``alpha * scores[i, j] - beta[j]``;
        on a ``diagonal`` block the row's own column is skipped, or forced in when ``include_self``."""
        block = _numpy(scores)
        _kernels.rows_pass(block, np.float32(alpha), _beta(beta, block.shape[1]), row0, col0, self.values,
                           self.indices, diagonal, include_self)

    def add_columns(self, scores: torch.Tensor, row0: int, col0: int, beta: torch.Tensor | None = None,
                    alpha: float = 1.0) -> None:
        """Columns ``col0 ..`` (as rows of the result) see rows ``row0 ..`` with scores
        ``alpha * scores[i, j] - beta[i]``."""
        block = _numpy(scores)
        threads = max(1, min(_kernels.numba.get_num_threads(), block.shape[1] // 64))
        _kernels.columns_pass(block, np.float32(alpha), _beta(beta, block.shape[0]), row0, col0, self.values,
                              self.indices, threads)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.values), torch.from_numpy(self.indices)


def _numpy(scores: torch.Tensor) -> np.ndarray:
    return scores.detach().contiguous().numpy()


def _beta(beta: torch.Tensor | None, size: int) -> np.ndarray:
    return np.zeros(size, dtype=np.float32) if beta is None else beta.contiguous().numpy()
