"""float64 Gram matrices and top eigenpairs for the subspace measures, at LAPACK's best on the CPU.

torch has neither a symmetric rank-k product nor a subset eigensolver: its ``c.T @ c`` computes
both triangles and its ``eigh`` every eigenvector, where SVCCA needs one triangle (BLAS ``dsyrk``)
and only the top ``q`` eigenpairs (LAPACK ``dsyevx``), several times less work on large sets.
Small problems and other devices stay in torch: a scipy call leaves OpenBLAS's threads spinning
for a while beside torch's, which costs more than it saves below ~10^9 multiply-adds.

Both functions work on the lower triangle only, as LAPACK does: ``gram`` may leave the upper one
unfilled, and ``top_eigh`` never reads it.
"""

from __future__ import annotations

import torch

_SCIPY_MIN_WORK = 1e9  # multiply-adds from which scipy's routines pay


def gram(c: torch.Tensor, rows: bool) -> torch.Tensor:
    """``c c^T`` (``rows=True``, ``[N, N]``) or ``c^T c`` (``[d, d]``) of a float64 ``c [N, d]``;
    only the lower triangle is sure to be filled.

    Example:
        >>> import torch
        >>> c = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
        >>> gram(c, rows=False).tril().tolist()
        [[10.0, 0.0], [14.0, 20.0]]
    """
    n, d = c.shape
    m, inner = (n, d) if rows else (d, n)
    if not _use_scipy(c, float(m) * m * inner / 2):
        return c @ c.T if rows else c.T @ c
    import numpy as np
    from scipy.linalg.blas import dsyrk

    # dsyrk forms a a^T (trans=0) or a^T a (trans=1) in the lower triangle. With c row-major, c^T
    # is a column-major view: no copy for either product.
    a = np.ascontiguousarray(c.numpy()).T
    return torch.from_numpy(dsyrk(1.0, a, trans=1 if rows else 0, lower=1))


def top_eigh(g: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``q`` largest eigenvalues (ascending) and their eigenvectors ``[m, q]`` of the symmetric
    ``g`` given by its lower triangle (``g`` may be overwritten).

    Example (a diagonal matrix: the unit vectors of its two largest entries):
        >>> import torch
        >>> values, vectors = top_eigh(torch.diag(torch.tensor([1.0, 9.0, 4.0], dtype=torch.float64)), 2)
        >>> values.tolist(), vectors.abs().argmax(dim=0).tolist()
        ([4.0, 9.0], [2, 1])
    """
    m = g.shape[0]
    if not _use_scipy(g, float(m) ** 3 / 3):
        values, vectors = torch.linalg.eigh(g, UPLO="L")
        return values[-q:], vectors[:, -q:]
    import numpy as np
    import scipy.linalg

    values, vectors = scipy.linalg.eigh(
        g.numpy(), lower=True, subset_by_index=[m - q, m - 1], driver="evx", overwrite_a=True, check_finite=False
    )
    return torch.from_numpy(values), torch.from_numpy(np.ascontiguousarray(vectors))


def _use_scipy(t: torch.Tensor, work: float) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float64 and not t.requires_grad and work >= _SCIPY_MIN_WORK
