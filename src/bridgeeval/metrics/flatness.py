"""When a set has no structure to compare: every row the same vector (or the same direction), to
within the rounding of the set's own storage.

Such a set makes every measure's value an artefact: its centred Gram matrix is rounding noise (CKA
2.5e-33 or -0.07 instead of undefined), its neighbours are all tied (lists ordered by index), its
pairwise distances all equal. The test is relative, never an exact zero: the set's spread about its
mean, ``||X - mean||_F``, against its size ``||X||_F``, must exceed ``ROUNDING_UNITS`` units of the
input dtype's rounding (float32: 32 * 1.2e-7 = 3.8e-6). Under cosine the rows' directions are what
the neighbour search and the distances see, so there the same test reads the unit rows.

Example:
    >>> import torch
    >>> v = torch.tensor([[0.3, -1.2, 4.0]])
    >>> flat_reason(v.repeat(50, 1), "x")
    'every row of x is the same vector (to rounding)'
    >>> flat_reason(v * torch.arange(1.0, 51.0).unsqueeze(1), "x", by_direction=True)
    'every row of x points the same way (to rounding): its cosine structure is all ties'
    >>> flat_reason(torch.randn(50, 3), "x") is None
    True
"""

from __future__ import annotations

import math

import torch

# How many units of the storage's rounding a relative spread must exceed to count as structure.
ROUNDING_UNITS = 32
_CHUNK_ELEMENTS = 1 << 20  # rows per chunk of a large set: an 8 MiB float64 copy at a time


def relative_spread(x: torch.Tensor, by_direction: bool = False) -> float:
    """``||X - mean||_F / ||X||_F`` in float64 (of the unit rows where ``by_direction``); 0 for an
    all-zero set. The deviations are summed, not ``sum x^2 - N mean^2`` (no cancellation), over
    chunks of rows (no N x d copy of a large set)."""
    tiny = torch.finfo(torch.float64).tiny
    peak = float(x.abs().max()) if x.numel() else 0.0
    if peak == 0.0:
        return 0.0

    def prepared(rows: torch.Tensor) -> torch.Tensor:
        # A float64 copy, divided by the largest magnitude (of the set, or of each row for
        # directions) before any square: 1e-200 * X and 1e200 * X square in range.
        rows = rows.double() / (rows.abs().amax(dim=1, keepdim=True).double().clamp_min(tiny) if by_direction else peak)
        return rows / rows.norm(dim=1, keepdim=True).clamp_min(tiny) if by_direction else rows

    step = max(1, _CHUNK_ELEMENTS // max(1, x.shape[1]))
    chunks = [x[i : i + step] for i in range(0, x.shape[0], step)]
    whole = prepared(x) if len(chunks) == 1 else None  # a small set: prepared once
    parts = [whole] if whole is not None else None
    mean = sum((c if parts else prepared(c)).sum(dim=0) for c in (parts or chunks)) / x.shape[0]
    spread = size = 0.0
    for c in parts or chunks:
        u = c if parts else prepared(c)
        spread += float((u - mean).pow_(2).sum())
        size += float(u.pow(2).sum())
    return (spread / size) ** 0.5 if size > 0 else 0.0


def rounding_of(x: torch.Tensor) -> float:
    """The unit rounding of ``x``'s storage (its dtype's machine epsilon; float64 for integers)."""
    return torch.finfo(x.dtype if x.is_floating_point() else torch.float64).eps


def spread_exceeds(x: torch.Tensor, threshold: float, by_direction: bool = False) -> bool:
    """Whether ``relative_spread(x, by_direction) > threshold``: decided by two rows where they show
    it (the validation hook asks it of f(X) every epoch), by the full computation otherwise.

    Any two rows bound the spread from below: ``||x_i - x_j|| <= ||x_i - m|| + ||x_j - m|| <=
    sqrt(2) ||X - m||_F``, and ``||X||_F`` is at most ``sqrt(N)`` for unit rows. A bound above twice
    the threshold settles it (the float64 rounding of the bound is far below that margin); an
    inconclusive or non-finite one (rows alike, values beyond float64's squares) leaves it to
    :func:`relative_spread`.
    """
    n = x.shape[0]
    if n >= 2 and x.numel():
        # ||X||_F: one pass over the set, shared by both pairs
        size = math.sqrt(n) if by_direction else float(torch.linalg.vector_norm(x, dtype=torch.float64))
        for j in {n - 1, n // 2} - {0}:
            if _two_row_bound(x, j, by_direction, size) > 2.0 * threshold:
                return True
    return relative_spread(x, by_direction) > threshold


def _two_row_bound(x: torch.Tensor, j: int, by_direction: bool, size: float) -> float:
    """``||x_0 - x_j|| / (sqrt(2) size)``, with ``size`` = ||X||_F (of the unit rows where
    ``by_direction``): a lower bound of the relative spread (0 where not finite)."""
    pair = x[[0, j]].double()
    if by_direction:
        pair = pair / torch.linalg.vector_norm(pair, dim=1, keepdim=True)
    gap = float(torch.linalg.vector_norm(pair[0] - pair[1]))
    bound = gap / (math.sqrt(2.0) * size) if size > 0 else 0.0
    return bound if math.isfinite(bound) else 0.0


def flat_reason(x: torch.Tensor, name: str, by_direction: bool = False) -> str | None:
    """Why ``x`` has no structure a measure can compare, or None."""
    if spread_exceeds(x, ROUNDING_UNITS * rounding_of(x), by_direction):
        return None
    if by_direction:
        return f"every row of {name} points the same way (to rounding): its cosine structure is all ties"
    return f"every row of {name} is the same vector (to rounding)"
