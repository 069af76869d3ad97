"""Exact rescaling by powers of two into the range where float64 squares and fourth powers (CKA's
||A^T B||_F^2) neither overflow nor underflow: the measures' working copies (``Representation``),
the report's Y and f(X), SVCCA's standardised wide set. Every quantity computed from them is
invariant to the scale or converted back, so 1e200 * X scores as X does."""

from __future__ import annotations

import math

import torch

SAFE_EXPONENT = 100  # largest magnitudes within 2^-100 .. 2^100 are left as they are


def range_exponent(*tensors: torch.Tensor) -> int:
    """``e`` such that ``t / 2^e`` has its largest magnitude (over all ``tensors``, which share one
    scale) within 2^-100 .. 2^100; 0 where it already is, as float32 data of ordinary values is.

    Example:
        >>> import torch
        >>> range_exponent(torch.tensor([1.0, -3.0])), range_exponent(torch.tensor([1e200], dtype=torch.float64))
        (0, 665)
    """
    peak = max(float(bound.abs()) for t in tensors for bound in t.aminmax())  # no |t| copy
    e = math.frexp(peak)[1] if peak > 0 else 0
    return e if abs(e) > SAFE_EXPONENT else 0


def scale_down_(t: torch.Tensor, exponent: int) -> torch.Tensor:
    """``t / 2^exponent`` in place, exact (in two factors: 2^-e alone is out of range where the data
    is denormal); ``t`` itself where ``exponent`` is 0."""
    if exponent == 0:
        return t
    half = -exponent // 2
    return t.mul_(2.0**half).mul_(2.0 ** (-exponent - half))
