"""float32 products of row blocks, ``a @ b.T``, by the fastest full-float32 kernel this CPU has.

torch's ``@`` runs MKL, which falls back to a slow path on non-Intel CPUs (about 205 GFLOP/s on the
2-core AMD EPYC of our CI against 300-450 for oneDNN's AVX-512 kernels). On first use the CPU
kernels are checked for float32 accuracy and timed once; the faster is kept for the process.
GPUs always use ``@`` (cuBLAS).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

_MIN_WORK = 1 << 27  # multiply-adds below which the choice does not matter
_chosen: list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = []


def block_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` for float32 ``a [m, d]`` and ``b [n, d]``, as a dense ``[m, n]`` tensor."""
    if a.device.type != "cpu" or a.shape[0] * b.shape[0] * a.shape[1] < _MIN_WORK:
        return a @ b.T
    if not _chosen:
        _chosen.append(_pick_cpu_kernel())
    return _chosen[0](a, b)


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b.T


def _onednn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The op torch.compile emits for CPU linear layers: oneDNN's GEMM on ordinary dense tensors.
    return torch.ops.mkldnn._linear_pointwise(a.contiguous(), b.contiguous(), None, "none", [], "")


def _pick_cpu_kernel() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if not torch.backends.mkldnn.is_available():
        return _matmul
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=gen), torch.randn(1024, 1024, generator=gen)
    try:
        out = _onednn(a, b)
    except (RuntimeError, AttributeError):  # op missing or unsupported in this build
        return _matmul
    # Full float32 or nothing: a kernel that rounded operands lower would break the error bound.
    exact = a.double() @ b.double().T
    bound = 2.0 * (a.shape[1] + 6) * 2.0**-24 * float(a.norm(dim=1).max() * b.norm(dim=1).max())
    if float((out.double() - exact).abs().max()) > bound:
        return _matmul
    return _onednn if _seconds(_onednn, a, b) < 0.9 * _seconds(_matmul, a, b) else _matmul


def _seconds(kernel, a: torch.Tensor, b: torch.Tensor) -> float:
    kernel(a, b)
    start = time.perf_counter()
    for _ in range(3):
        kernel(a, b)
    return time.perf_counter() - start
