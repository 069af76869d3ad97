"""The cross-modal report: mNNO of the three pairs, fit and retrieval measures, hubness."""

from __future__ import annotations

import math

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import selection
from bridgeeval.metrics.flatness import flat_reason
from bridgeeval.metrics.gemm import FLOAT32_SAFE_EXPONENT, dot_error_bound
from bridgeeval.metrics.neighbours import knn_indices
from bridgeeval.metrics.overlap import mnno_chance, nn_overlap
from bridgeeval.metrics.scaling import range_exponent, scale_down_
from bridgeeval.metrics.validation import as_tensor, check_k, check_metric, check_paired

REPORT_KEYS = (
    "mnno_input_mapped",
    "mnno_target_mapped",
    "mnno_input_target",
    "mse",
    "r2",
    "recall_at_k",
    "hubness",
    "mnno_chance",
)
# The values that depend on the neighbour metric (cosine, euclidean); MSE and R^2 do not.
NEIGHBOUR_KEYS = ("mnno_input_mapped", "mnno_target_mapped", "mnno_input_target", "recall_at_k", "hubness")
_RANK_BLOCK = 2048
_BAND_ELEMENTS = 1 << 22  # float64 elements of the pairs retrieval rescores at once (32 MiB)


class TargetSide:
    """What the report derives from the targets alone: their float64 and float32 copies, R^2's
    total sum of squares and retrieval's per-target scale. A validation set's targets never change
    during training, so the hook computes these once (``CrossModalReport.cache_reference``); the
    report's values are the same with or without them."""

    def __init__(self, y, metric: str = "cosine"):
        check_metric(metric)
        self.metric = metric
        self.y64 = as_tensor(y, "target").double()
        self.y32 = self.y64.float()  # retrieval's products (used only where float32 holds them)
        centred = self.y64 - self.y64.mean(dim=0)
        self.ss_tot = centred.mul_(centred).sum(dim=0)
        self.retrieval_scale = _retrieval_scale(self.y64, metric)

    def fits(self, shape: tuple[int, ...], metric: str, device: torch.device) -> bool:
        """Whether these are the targets of a report of ``shape`` (Y's) under ``metric`` on ``device``."""
        return metric == self.metric and tuple(shape) == tuple(self.y64.shape) and device == self.y64.device


def cross_modal_report(
    x,
    y,
    mapped,
    k: int = 10,
    metric: str = "cosine",
    include_self: bool = False,
    neighbours: dict[str, torch.Tensor] | None = None,
    targets: TargetSide | None = None,
    reasons: dict[str, str] | None = None,
    flat: dict[str, str | None] | None = None,
) -> dict[str, float]:
    """Everything Experiment 1 asks of a mapping ``f`` with ``mapped = f(x)`` paired to ``y``.

    Keys: ``mnno_input_mapped`` = mNNO(X, f(X)), ``mnno_target_mapped`` = mNNO(Y, f(X)),
    ``mnno_input_target`` = mNNO(X, Y), ``mse`` (mean over elements), ``r2`` (uniform average over
    output dimensions), ``recall_at_k`` (how often y_i is among the k targets nearest to f(x_i)) and
    ``hubness`` (skewness of the k-occurrence counts of the mapped set, Radovanovic et al. 2010),
    and ``mnno_chance``, the exact mNNO of sets paired at random (:func:`mnno_chance`).

    Each set's neighbours are computed once; ``neighbours`` may pass cached lists for ``"input"``
    and ``"target"`` (they never change during training), and for ``"mapped"``; ``targets`` what
    the report derives from ``y`` alone (:class:`TargetSide`, built from this same ``y``).
    A value that a flat set leaves undefined (all its neighbours tied: :func:`undefined_keys`) is
    NaN, and ``reasons`` (when given) receives why under its key; ``flat`` may pass what
    :func:`~bridgeeval.metrics.flatness.flat_reason` says of ``"input"`` and ``"target"`` (cached:
    they never change during training).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [4.0], [9.0]])
        >>> r = cross_modal_report(x, x, x, k=1, metric="euclidean")
        >>> r["mnno_input_mapped"], r["mse"], r["recall_at_k"]
        (1.0, 0.0, 1.0)
    """
    x, y, mapped = as_tensor(x, "input"), as_tensor(y, "target"), as_tensor(mapped, "mapped")
    n = check_paired({"input": x, "target": y, "mapped": mapped})
    if mapped.shape[1] != y.shape[1]:
        raise BridgeEvalError(
            f"mapped has {mapped.shape[1]} dimensions but target has {y.shape[1]}: f(X) must live in Y's space"
        )
    check_metric(metric)
    check_k(k, n, include_self)
    undefined = undefined_keys({"input": x, "target": y, "mapped": mapped}, metric, flat)  # in their own dtypes
    dev = mapped.device
    y = y.to(dev)
    # Each set is searched in its own dtype (its float64 copy has the same lists, and float32 is half
    # the reading); one float64 copy of Y and f(X) serves every other measure below.
    searched = {"input": x, "target": y, "mapped": mapped}
    if targets is not None and not targets.fits(y.shape, metric, y.device):
        raise BridgeEvalError(f"cached targets are {tuple(targets.y64.shape)} ({targets.metric}), "
                              f"the report's {tuple(y.shape)} ({metric})")
    y = targets.y64 if targets is not None else y.double()
    mapped = mapped.double()
    # Y and f(X) by one power of two (they share a space), exact, where squared errors and
    # retrieval's products would leave float64's range; R^2 and recall@K are invariant to it.
    exponent = range_exponent(y, mapped)
    if exponent:  # copies: y may be the cached targets
        y, mapped, targets = scale_down_(y.clone(), exponent), scale_down_(mapped.clone(), exponent), None
    cached = neighbours or {}
    idx = {name: cached.get(name) for name in searched}
    for name, t in searched.items():
        if idx[name] is None:
            idx[name] = knn_indices(t.to(dev), k, metric, include_self, name=name)  # checks t too
        else:
            idx[name] = idx[name].to(dev)
            if idx[name].shape != (n, k):
                raise BridgeEvalError(
                    f"cached {name} neighbours have shape {tuple(idx[name].shape)}, expected {(n, k)}"
                )
    diff = mapped - y
    sq_err = diff.mul_(diff)
    report = {
        **_pair_mnnos(idx),
        "mse": _in_data_units(_mean(sq_err), 2 * exponent),
        "r2": r2_score(mapped, y, sq_err, None if targets is None else targets.ss_tot),
        "recall_at_k": recall_at_k(mapped, y, k, metric, targets),
        "hubness": hubness(idx["mapped"], n),
        "mnno_chance": mnno_chance(n, k, include_self),  # what the three mNNOs read against
    }
    report.update(dict.fromkeys(undefined, float("nan")))
    if reasons is not None:
        reasons.update(undefined)
    return report


def _pair_mnnos(idx: dict[str, torch.Tensor]) -> dict[str, float]:
    """mNNO of the three pairs from one overlap pass over their stacked lists (each value equals
    :func:`~bridgeeval.metrics.overlap.mnno_from_indices` of its pair: integer counts sum exactly in float64)."""
    pairs = (("input", "mapped"), ("target", "mapped"), ("input", "target"))
    n, k = idx["input"].shape
    shared = nn_overlap(torch.cat([idx[a] for a, _ in pairs]), torch.cat([idx[b] for _, b in pairs]))
    means = (shared.view(len(pairs), n).double().mean(dim=1) / k).tolist()
    return {f"mnno_{a}_{b}": value for (a, b), value in zip(pairs, means, strict=True)}


def undefined_keys(sets: dict[str, torch.Tensor], metric: str, known: dict[str, str | None] | None = None) -> dict[str, str]:
    """The report keys (mNNO of each pair, hubness of f(X)) that a flat set leaves undefined, each
    with why: its neighbours are all tied, so their lists are the ties' order (by index), not the
    data's (``metrics.flatness``). ``known`` holds sets' reasons already found (None: not flat)."""
    known = known or {}
    flat = {name: known[name] if name in known else neighbour_flatness(t, name, metric) for name, t in sets.items()}
    out = {}
    for a, b in (("input", "mapped"), ("target", "mapped"), ("input", "target")):
        if a not in sets or b not in sets:
            continue
        reason = flat[a] or flat[b]
        if reason:
            out[f"mnno_{a}_{b}"] = reason
    if flat.get("mapped"):
        out["hubness"] = flat["mapped"]
    return out


def neighbour_flatness(x: torch.Tensor, name: str, metric: str) -> str | None:
    """Why ``x``'s neighbours under ``metric`` are all tied, or None (``metrics.flatness``)."""
    return flat_reason(x, name, by_direction=metric == "cosine")


def _in_data_units(value: float, exponent: int) -> float:
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.inf  # an MSE beyond float64's range: infinite, as float arithmetic has it


def _mean(values: torch.Tensor) -> float:
    """The mean of a ``[N, d]`` tensor independent of the thread count (torch's ``mean`` adds in an
    order that depends on it, so one process and a torchrun group differed in the last bit): rows
    summed in float64, then those sums exactly (``math.fsum``)."""
    return math.fsum(values.sum(dim=1, dtype=torch.float64).tolist()) / max(1, values.numel())


def r2_score(pred: torch.Tensor, target: torch.Tensor, sq_err: torch.Tensor | None = None,
             ss_tot: torch.Tensor | None = None) -> float:
    """Coefficient of determination per output dimension, averaged (scikit-learn's default).

    ``sq_err`` may pass ``(pred - target)**2`` and ``ss_tot`` the target's total sum of squares
    per dimension where the caller already has them.
    """
    pred, target = pred.double(), target.double()  # no-ops for float64 input
    ss_res = (sq_err if sq_err is not None else (target - pred).pow(2)).sum(dim=0)
    if ss_tot is None:
        centred = target - target.mean(dim=0)
        ss_tot = centred.mul_(centred).sum(dim=0)
    ok = ss_tot > 0
    if not bool(ok.any()):
        return float("nan")
    return float((1.0 - ss_res[ok] / ss_tot[ok]).mean())


def _retrieval_scale(t: torch.Tensor, metric: str) -> torch.Tensor:
    # Per query, targets rank by cos ~ <q, t>/|t| or by |t|^2 - 2<q, t>: |q| is a row constant.
    return -1.0 / t.norm(dim=1).clamp_min(1e-300) if metric == "cosine" else t.pow(2).sum(dim=1)


def retrieval_ranks(queries: torch.Tensor, targets: torch.Tensor, metric: str,
                    side: TargetSide | None = None) -> torch.Tensor:
    """Rank of the paired target among all targets for each query (0 = nearest; ties by index),
    as float64 distances rank them. ``side`` may pass what the ranking derives from the targets
    alone (:class:`TargetSide` of these ``targets``).

    float32 products decide every pair they can: a target whose float32 distance lies more than
    twice the float32 error bound from the paired one's is on the same side of it in float64. The
    targets inside that band (a tie, a duplicate target, a near one) are placed by float64 products
    of those pairs alone; a query with very many of them is ranked from float64 products whole.
    """
    q = queries.double()
    t = targets.double() if side is None else side.y64
    scale = _retrieval_scale(t, metric) if side is None else side.retrieval_scale  # -1/|t|, or |t|^2
    ranks = torch.empty(len(q), dtype=torch.long, device=q.device)
    q_norms = q.norm(dim=1)
    t_norms = -1.0 / scale if metric == "cosine" else scale.sqrt()  # |t| from the scale: one pass fewer
    decides = bool(_in_float32_range(q_norms).all() and _in_float32_range(t_norms).all())
    q32, t32 = (q.float(), t.float() if side is None else side.y32) if decides else (None, None)
    # |float32 <q, t> - <q, t>| <= gamma |q| |t|; distances scale it by 1/|t|, or by 2.
    gamma = dot_error_bound(q.shape[1])
    band = 2.0 * gamma * (1.0 + 1e-6) * q_norms * (1.0 if metric == "cosine" else 2.0 * float(t_norms.max()))
    for start in range(0, len(q), _RANK_BLOCK):
        stop = min(start + _RANK_BLOCK, len(q))
        if not decides:
            ranks[start:stop] = _ranks64(q, t, metric, scale, torch.arange(start, stop, device=q.device))
            continue
        prod = q32[start:stop] @ t32.T
        dist = _distances(prod.double(), scale, metric)
        rows = torch.arange(stop - start, device=q.device)
        own = dist[rows, rows + start].unsqueeze(1)
        width = band[start:stop].unsqueeze(1)
        ranks[start:stop] = (dist < own - width).sum(dim=1)
        near = (dist - own).abs_() <= width
        unsure = near.sum(dim=1) > 1  # the paired target is always in its band
        if bool(unsure.any()):
            local = unsure.nonzero().squeeze(1)
            rows = local + start
            ranks[rows] = _ranks_in_band(q, t, metric, scale, rows, near[local], ranks[rows])
    return ranks


def _ranks_in_band(q: torch.Tensor, t: torch.Tensor, metric: str, scale: torch.Tensor, rows: torch.Tensor,
                   near: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
    """The ranks of ``rows``: the ``below`` targets float32 places before the paired one, and those
    inside the band (``near``) that float64 distances put before it (ties to the lower index), from
    float64 products of those pairs; from whole rows of float64 products where the pairs are too
    many (a set of duplicates)."""
    local, cols = near.nonzero(as_tuple=True)
    if len(cols) * q.shape[1] > _BAND_ELEMENTS:
        return _ranks64(q, t, metric, scale, rows)
    queries = rows[local]
    dots = selection.pair_dots(q, queries, cols.unsqueeze(1), t)  # read in place where numba serves
    prod = dots.squeeze(1) if dots is not None else (q[queries] * t[cols]).sum(dim=1)
    dist = prod.mul_(scale[cols]) if metric == "cosine" else scale[cols] - 2.0 * prod
    own = torch.empty(len(rows), dtype=dist.dtype, device=dist.device)
    paired = cols == queries
    own[local[paired]] = dist[paired]
    before = (dist < own[local]) | ((dist == own[local]) & (cols < queries))
    return below + torch.bincount(local[before], minlength=len(rows))


def _ranks64(q: torch.Tensor, t: torch.Tensor, metric: str, scale: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The ranks of ``rows`` from float64 products."""
    dist = _distances(q[rows] @ t.T, scale, metric)
    own = dist.gather(1, rows.unsqueeze(1))
    cols = torch.arange(len(t), device=q.device).unsqueeze(0)
    before = (dist < own) | ((dist == own) & (cols < rows.unsqueeze(1)))
    return before.sum(dim=1)


def _distances(prod: torch.Tensor, scale: torch.Tensor, metric: str) -> torch.Tensor:
    return prod.mul_(scale.unsqueeze(0)) if metric == "cosine" else scale.unsqueeze(0) - 2.0 * prod


def _in_float32_range(norms: torch.Tensor) -> torch.Tensor:
    """Rows whose float32 copies and products neither overflow nor lose relative precision."""
    return (norms >= 2.0**-FLOAT32_SAFE_EXPONENT) & (norms <= 2.0**FLOAT32_SAFE_EXPONENT)


def recall_at_k(mapped: torch.Tensor, target: torch.Tensor, k: int, metric: str = "cosine",
                side: TargetSide | None = None) -> float:
    """Fraction of items whose own target is among the k targets nearest to the mapped vector."""
    return float((retrieval_ranks(mapped, target, metric, side) < k).double().mean())


def hubness(neighbour_idx: torch.Tensor, n: int) -> float:
    """Skewness of the k-occurrence distribution N_k (how often each point is someone's neighbour)."""
    counts = torch.bincount(neighbour_idx.reshape(-1), minlength=n).double()
    centred = counts - counts.mean()
    var = centred.pow(2).mean()
    if float(var) == 0.0:
        return 0.0
    return float(centred.pow(3).mean() / var.pow(1.5))
