"""``Representation``: one set of N vectors under comparison, with what the measures derive from it
(neighbour lists, the centred float64 copy, self-similarity terms) computed once and shared.

Every alignment measure compares two paired sets. Much of its work depends on one set only: the
k-NN lists of X serve mNNO, mutual k-NN, cycle k-NN, LCS and edit-distance k-NN and CKNNA alike,
and CKA's ``HSIC(X, X)`` is the same for (X, f(X)) and (X, Y). In the validation hook X and Y never
change, so their ``Representation`` lives across epochs and only f(X)'s is new each epoch.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.flatness import flat_reason
from bridgeeval.metrics.neighbours import knn_indices
from bridgeeval.metrics.scaling import range_exponent, scale_down_
from bridgeeval.metrics.validation import as_tensor, check_k, check_metric, check_points


class Representation:
    """A set ``x`` ``[N, d]`` and its derived quantities, each computed on first use.

    ``metric`` and ``include_self`` fix the neighbour convention of the k-NN measures (that of
    :func:`~bridgeeval.metrics.knn_indices`); ``neighbours`` may pass lists already computed
    (``{k: LongTensor[N, k]}``), e.g. the validation hook's cached lists of X and Y.

    Example:
        >>> import torch
        >>> rep = Representation(torch.tensor([[0.0], [1.0], [3.0]]), metric="euclidean")
        >>> rep.neighbours(1).tolist()
        [[1], [0], [1]]
        >>> rep.neighbours(1) is rep.neighbours(1)  # searched once
        True
    """

    def __init__(
        self,
        x,
        *,
        metric: str = "cosine",
        include_self: bool = False,
        name: str = "x",
        neighbours: dict[int, torch.Tensor] | None = None,
    ):
        self.x = as_tensor(x, name)
        check_metric(metric)
        # Finite values for every measure; cosine's non-zero rows only where neighbours are searched.
        check_points(self.x, name, "euclidean")
        self.metric, self.include_self, self.name = metric, include_self, name
        self._memo: dict[Any, Any] = {}
        for k, idx in (neighbours or {}).items():
            if tuple(idx.shape) != (self.n, k):
                raise BridgeEvalError(
                    f"cached {name} neighbours have shape {tuple(idx.shape)}, expected {(self.n, k)}"
                )
            self._memo[("neighbours", k)] = idx.to(self.x.device)

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    def memo(self, key, compute: Callable[[], Any]):
        """``compute()`` once per ``key`` for this set."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def pair_memo(self, other: Representation, key, compute: Callable[[], Any]):
        """``compute()`` once per ``key`` and partner set while the partner lives: work that two
        measures of one pair share (the biased and unbiased CKA's sums). The partner is held by a
        weak reference, so a set kept across epochs (X) never keeps past epochs' f(X) alive."""
        table = self._memo.setdefault(("pair", key), {})
        for gone in [i for i, (ref, _) in table.items() if ref() is None]:
            del table[gone]
        entry = table.get(id(other))
        if entry is None or entry[0]() is not other:
            entry = (weakref.ref(other), compute())
            table[id(other)] = entry
        return entry[1]

    def neighbours(self, k: int) -> torch.Tensor:
        """Exact k-NN lists ``[N, k]`` under this set's convention (searched once per k)."""
        check_k(k, self.n, self.include_self)
        return self.memo(("neighbours", k), lambda: knn_indices(self.x, k, self.metric, self.include_self, name=self.name))

    def flat(self, structure: str) -> str | None:
        """Why this set has none of ``structure`` to compare, or None (``metrics.flatness``):
        ``"centred"`` (its spread about the mean: CKA, SVCCA, Procrustes), ``"neighbours"`` and
        ``"distances"`` (under cosine the rows' directions, else the centred spread)."""
        by_direction = structure != "centred" and self.metric == "cosine"
        return self.memo(("flat", by_direction), lambda: flat_reason(self.x, self.name, by_direction))

    @property
    def exponent(self) -> int:
        """``e`` such that ``x / 2^e``, the float64 copies' scale, has its largest magnitude within
        2^-100 .. 2^100, where fourth powers (CKA's ||A^T B||_F^2) neither overflow nor underflow;
        0 (no scaling) where ``x`` is already there, as every float32 set of ordinary values is.
        Every measure that reads the copies is invariant to scaling a set (what depends on units,
        SVCCA's 1e-8 and a given RBF width, is scaled alike), so 1e200 * X scores as X does."""
        return self.memo("exponent", lambda: range_exponent(self.x))

    def float64_copy(self) -> torch.Tensor:
        """A new float64 copy of ``x / 2^exponent`` (never ``x`` itself; exact), for in-place work."""
        return self.scaled_(self.x.to(torch.float64, copy=True))

    def scaled_(self, t: torch.Tensor) -> torch.Tensor:
        """``t / 2^exponent`` in place (exact for float64 ``t`` of this set's rows): a copy, never
        a view of ``x`` (``x[rows].double()`` is one where ``x`` is float64)."""
        return scale_down_(t, self.exponent)

    def in_copy_units(self, value: float) -> float:
        """``value`` (in ``x``'s units, e.g. an RBF width) in the copies' units: ``value / 2^e``."""
        return math.ldexp(value, -self.exponent)

    def centred(self) -> torch.Tensor:
        """``float64_copy`` with each column's mean removed (one copy: centred in place)."""
        def compute() -> torch.Tensor:
            c = self.float64_copy()
            return c.sub_(c.mean(dim=0))

        return self.memo("centred", compute)

    def permuted(self, perm: torch.Tensor, inverse: torch.Tensor | None = None) -> Representation:
        """This set with its rows in the order ``perm`` (``x[perm]``), carrying over what it has
        already derived wherever rows only move: neighbour lists (renumbered, so ties keep this
        set's order), row-wise copies and norms, and the scalars a reordering leaves alone. A
        permutation null (``metrics.null``) so pays only for what depends on the pairing."""
        return _Permuted(self, perm, inverse)


def as_representation(x, name: str, metric: str = "cosine", include_self: bool = False) -> Representation:
    """``x`` itself when it is already a ``Representation``, else a new one."""
    if isinstance(x, Representation):
        return x
    return Representation(x, metric=metric, include_self=include_self, name=name)


def paired(a, b, metric: str = "cosine", include_self: bool = False) -> tuple[Representation, Representation]:
    """Two representations of the same N items (rows paired by position), on one device."""
    ra = as_representation(a, "a", metric, include_self)
    rb = as_representation(b, "b", metric, include_self)
    if ra.n != rb.n:
        raise BridgeEvalError(f"the two sets must pair row by row: a has {ra.n} rows, b has {rb.n}")
    if ra.x.device != rb.x.device:
        raise BridgeEvalError(f"the two sets are on different devices: a on {ra.x.device}, b on {rb.x.device}")
    return ra, rb


# Memo entries a reordering of the rows leaves as they are, and those whose rows move with it.
_UNCHANGED = ("exponent", "centred_frobenius", "rms_distance", "flat", "cknna_self", "mean_norm", "concentricity",
              "uniformity")
_ROWWISE = ("centred", "centred_sq_norms", "procrustes_narrow", "svcca_directions", "rsa_copy", "list_dots")


class _Permuted(Representation):
    """``parent`` with its rows reordered; ``x`` itself gathered only if a measure reads it."""

    def __init__(self, parent: Representation, perm: torch.Tensor, inverse: torch.Tensor | None = None):
        self._parent, self._perm = parent, perm.to(parent.x.device)
        if inverse is None:
            positions = torch.arange(len(perm), device=self._perm.device)
            inverse = torch.empty_like(self._perm).scatter_(0, self._perm, positions)
        self._inverse = inverse.to(self._perm.device)
        self.metric, self.include_self, self.name = parent.metric, parent.include_self, parent.name
        self._memo = {key: moved for key, value in parent._memo.items()
                      if (moved := self._moved(key, value)) is not _SKIP}

    @property
    def x(self) -> torch.Tensor:
        return self.memo("x", lambda: self._parent.x[self._perm])

    @property
    def n(self) -> int:
        return self._parent.n

    @property
    def dim(self) -> int:
        return self._parent.dim

    def _moved(self, key, value):
        kind = key[0] if isinstance(key, tuple) else key
        if kind == "neighbours":  # i's neighbours are perm[i]'s, renumbered into the new order
            return self._inverse[value[self._perm]]
        if kind == "rsa_ranks":  # values of pairs i < j: each new pair is an old one
            from bridgeeval.metrics.rsa_measures import condensed_index

            return value[condensed_index(self._perm)]
        if kind == "basis":  # an orthonormal basis of the columns: its rows move, its values do not
            return value[0][self._perm], value[1]
        if kind in _UNCHANGED:
            return value
        if kind in _ROWWISE:
            return self._rows(value)
        return _SKIP  # pair memos and anything not listed: computed again for the new order

    def _rows(self, value):
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(self._rows(v) for v in value)
        return value[self._perm]


_SKIP = object()
