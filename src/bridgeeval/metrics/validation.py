"""Input checks shared by the metric functions: explicit shape and value errors."""

from __future__ import annotations

import numpy as np
import torch

from bridgeeval.errors import BridgeEvalError

METRICS = ("cosine", "euclidean")


def as_tensor(points, name: str = "x") -> torch.Tensor:
    """A 2-D floating tensor on the caller's device (numpy arrays become CPU tensors, no copy)."""
    if isinstance(points, np.ndarray):
        points = torch.from_numpy(points)
    elif not isinstance(points, torch.Tensor):
        try:
            points = torch.as_tensor(np.asarray(points, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise BridgeEvalError(f"{name}: cannot read as a numeric matrix ({err})") from None
    if points.ndim != 2:
        raise BridgeEvalError(f"{name}: expected a 2-D matrix (items x dims), got shape {tuple(points.shape)}")
    if not points.is_floating_point():
        points = points.double()
    return points


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise BridgeEvalError(f"metric: unknown neighbour metric {metric!r}; choose one of {', '.join(METRICS)}")


_ROW_CHUNK_ELEMENTS = 1 << 18  # 1-2 MiB: a chunk's temporaries stay in cache


def rowwise(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn`` (a per-row reduction of a ``[rows, d]`` slice) over ``x`` by chunks of rows: a
    whole-matrix temporary (``x.abs()``, a float64 copy) costs several times more than its chunks,
    mostly in first-touch page faults."""
    step = max(1, _ROW_CHUNK_ELEMENTS // max(1, x.shape[1]))
    if x.shape[0] <= step:
        return fn(x)
    return torch.cat([fn(x[start : start + step]) for start in range(0, x.shape[0], step)])


def check_points(x: torch.Tensor, name: str, metric: str) -> None:
    """Rejects empty, non-finite and (under cosine) zero rows, naming the first offending row."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise BridgeEvalError(f"{name}: empty matrix of shape {tuple(x.shape)}")
    # One reduction per check on the clean path (run every epoch on f(X)); a row sum in float64 is
    # finite exactly when the row is, for float32 data; float64 overflow is re-checked row by row.
    if not bool(torch.isfinite(rowwise(lambda rows: rows.sum(dim=1, dtype=torch.float64), x)).all()):
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            row = int((~finite).nonzero()[0])
            raise BridgeEvalError(f"{name}: row {row} has NaN or infinite values")
    if metric == "cosine":
        zero = rowwise(lambda rows: rows.abs().amax(dim=1), x) == 0
        if bool(zero.any()):
            row = int(zero.nonzero()[0])
            raise BridgeEvalError(f"{name}: row {row} is a zero vector, which has no cosine similarity")


def check_k(k: int, n: int, include_self: bool) -> None:
    available = n if include_self else n - 1
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise BridgeEvalError(f"k: must be a positive integer, got {k!r}")
    if k > available:
        rule = "N" if include_self else "N - 1 (self excluded)"
        raise BridgeEvalError(f"k={k} is too large for {n} items: at most {rule} = {available} neighbours exist")


def check_paired(sets: dict[str, torch.Tensor]) -> int:
    """Paired sets must have the same number of rows; returns it."""
    rows = {name: t.shape[0] for name, t in sets.items()}
    if len(set(rows.values())) > 1:
        listing = ", ".join(f"{name} has {n}" for name, n in rows.items())
        raise BridgeEvalError(f"paired sets differ in number of rows: {listing}")
    return next(iter(rows.values()))
