"""float32 products of row blocks, ``a @ b.T``, by the fastest full-float32 kernel this CPU has.

torch's ``@`` runs MKL, which falls back to a slow path on non-Intel CPUs, where oneDNN's AVX-512
kernels can be faster. oneDNN's is checked for full float32 accuracy on first use; then the first
real products alternate between the two kernels, timed, and the faster per multiply-add (best of
three calls each) is kept for the process: no timing runs of its own, and a choice made on the
search's real shapes (a one-off timing at another size picked the slower kernel about half the
time, the two being close there). GPUs always use ``@`` (cuBLAS). Rates: docs/benchmarks.md.

:func:`ieee_float32` keeps the products in IEEE float32 whatever a user set for their model
(``torch.set_float32_matmul_precision``, which Lightning recommends on GPUs with tensor cores).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import torch

_U32 = torch.finfo(torch.float32).eps / 2  # unit roundoff of float32
# Magnitudes within 2^-40 .. 2^40: float32 copies, their squares and products neither overflow nor
# underflow, so dot_error_bound holds (scaling.SAFE_EXPONENT is float64's range, for the measures).
FLOAT32_SAFE_EXPONENT = 40
_MIN_WORK = 1 << 27  # multiply-adds below which the choice does not matter
_TRIALS = 3  # timed real calls per kernel before the choice
Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def block_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` for float32 ``a [m, d]`` and ``b [n, d]``, as a dense ``[m, n]`` tensor."""
    if a.device.type != "cpu" or a.shape[0] * b.shape[0] * a.shape[1] < _MIN_WORK:
        return a @ b.T
    return _CHOICE.run(a, b)


def dot_error_bound(dim: int) -> float:
    """``gamma`` with ``|float32 <a, b> - <a, b>| <= gamma |a| |b|`` for products of length ``dim``
    of float32 (or float64 rounded to float32) vectors, summed in any order: ``2 (dim + 6) u``."""
    return 2.0 * (dim + 6) * _U32


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Within the block, float32 GEMMs run in IEEE float32 on the GPU (cuBLAS) and on the CPU
    (oneDNN); the user's settings come back on leaving, also after an error.

    Why: TF32 or bfloat16 operands make each product's error bound 8-60x wider, so the exact
    search would rescore many more candidates in float64 and send many rows down its slow path
    (docs/benchmarks.md). The setting is process-wide, so a GEMM of another thread during the
    search runs in IEEE float32 too.
    """
    backends = [b for b in (torch.backends.cuda.matmul, getattr(torch.backends.mkldnn, "matmul", None))
                if hasattr(b, "fp32_precision")]
    if not backends:  # torch < 2.9: one process-wide setting
        saved = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(saved)
        return
    # Per backend, as set (reading the global getter raises once a user has used this newer API).
    saved = [b.fp32_precision for b in backends]
    for b in backends:
        b.fp32_precision = "ieee"
    try:
        yield
    finally:
        for b, value in zip(backends, saved, strict=True):
            b.fp32_precision = value


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b.T


def _onednn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The op torch.compile emits for CPU linear layers: oneDNN's GEMM on ordinary dense tensors.
    return torch.ops.mkldnn._linear_pointwise(a.contiguous(), b.contiguous(), None, "none", [], "")


class _KernelChoice:
    """The CPU kernel of this process: candidates timed on the first real calls, then the fastest."""

    def __init__(self):
        self.chosen: Kernel | None = None
        self.candidates: list[Kernel] = []
        self.best: dict[Kernel, float] = {}  # least seconds per multiply-add seen
        self.calls = 0

    def run(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.chosen is not None:
            return self.chosen(a, b)
        if not self.candidates:
            self.candidates = _full_float32_kernels()
        kernel = self.candidates[self.calls % len(self.candidates)]
        start = time.perf_counter()
        out = kernel(a, b)
        per_work = (time.perf_counter() - start) / (a.shape[0] * b.shape[0] * a.shape[1])
        self.best[kernel] = min(self.best.get(kernel, math.inf), per_work)
        self.calls += 1
        if self.calls >= _TRIALS * len(self.candidates):
            self.chosen = min(self.candidates, key=self.best.__getitem__)
        return out


def _full_float32_kernels() -> list[Kernel]:
    """``_matmul``, and oneDNN's kernel where it exists and keeps full float32 accuracy."""
    if not torch.backends.mkldnn.is_available():
        return [_matmul]
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 1024, generator=gen), torch.randn(512, 1024, generator=gen)
    try:
        out = _onednn(a, b)
    except (RuntimeError, AttributeError):  # op missing or unsupported in this build
        return [_matmul]
    # Full float32 or nothing: a kernel that rounded operands lower would break the error bound.
    exact = a.double() @ b.double().T
    bound = 2.0 * (a.shape[1] + 6) * 2.0**-24 * float(a.norm(dim=1).max() * b.norm(dim=1).max())
    if float((out.double() - exact).abs().max()) > bound:
        return [_matmul]
    return [_onednn, _matmul]


_CHOICE = _KernelChoice()
