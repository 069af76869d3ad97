"""Bootstrap intervals over items for every measure: how much a value would move with another
sample of items from the same population.

Two ways, by what a measure is:

* ``items``: the k-NN measures that are means of per-item values (mNNO and mutual k-NN: overlap
  / k; cycle k-NN: found again or not; LCS and edit-distance k-NN: per-item list scores). The
  items' values, each from its neighbourhood in the whole set, are resampled with replacement.
  Resampling the rows themselves would put copies of an item at distance 0 from each other: each
  copy's nearest neighbour in both sets, an overlap the data never had.
* ``rows``: every other measure (CKA, SVCCA, RSA, Procrustes) is computed again on the paired rows
  resampled with replacement (the usual bootstrap of a statistic of the sample). RSA correlates
  the resampled items' pairs, gathered from the whole set's pair distances, leaving out the pairs
  of an item with its own copy (distance 0 in both sets: agreement the data never had), as
  rsatoolbox's bootstrap does; exact where RSA is (``rsa_max_pairs``), else no interval.

CKNNA has neither: it is not a mean over items, and resampled rows duplicate neighbours (above);
it gets no interval (None). Intervals are percentile intervals: the (1 - level)/2 and
(1 + level)/2 quantiles of the resampled values (linear interpolation, numpy's default). Each
resample's indices are drawn by ``torch.randint`` from a generator seeded with ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.knn_measures import (
    cycle_hits,
    edit_distances,
    jaccard_rows,
    lcs_lengths,
    rank_similarity_rows,
    second_order_cosine_rows,
)
from bridgeeval.metrics.measures import MEASURES, PAIRS, _value, check_measures, measure_options, present_pairs
from bridgeeval.metrics.overlap import nn_overlap
from bridgeeval.metrics.representation import Representation


def _overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return nn_overlap(a, b).double() / a.shape[1]


def _lists(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable:
    return lambda ra, rb, k: fn(ra.neighbours(k), rb.neighbours(k).to(ra.x.device))


# Per-item values whose mean is the measure (from the two sets, their k-NN lists above all).
PER_ITEM: dict[str, Callable[[Representation, Representation, int], torch.Tensor]] = {
    "mnno": _lists(_overlap),
    "mutual_knn": _lists(_overlap),
    "cycle_knn": _lists(lambda a, b: cycle_hits(a, b).double()),
    "lcs_knn": _lists(lambda a, b: lcs_lengths(a, b).double() / a.shape[1]),
    "edit_distance_knn": _lists(lambda a, b: 1.0 - edit_distances(a, b).double() / a.shape[1]),
    "jaccard_knn": _lists(jaccard_rows),
    "rank_similarity": _lists(rank_similarity_rows),
    "second_order_cosine": second_order_cosine_rows,  # NaN rows (duplicated items) left out, as by the mean
}
# Printed under a table where a value lies outside its own interval.
OUTSIDE_NOTE = ("† the value lies outside its own percentile interval: the measure is biased under resampling "
                "(duplicated rows shrink the effective sample, which raises canonical correlations and GULP's and "
                "PWCCA's cross terms); read the interval's width, not its position")
NO_INTERVAL = {"cknna": "neither a mean over items nor safe to resample (copies would be each other's neighbours)"}


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    resamples: int
    method: str  # items | rows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_bootstrap_options(resamples: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 2:
        raise BridgeEvalError(f"resamples={resamples!r}: must be an integer, 2 or more")
    if not 0.0 < level < 1.0:
        raise BridgeEvalError(f"level={level!r}: must lie strictly between 0 and 1")


def percentile_interval(values: torch.Tensor, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``values`` (numpy's linear interpolation)."""
    tail = (1.0 - level) / 2.0
    q = torch.quantile(values.double(), torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    return float(q[0]), float(q[1])


def bootstrap_intervals(
    sets: Mapping[str, Representation],
    names: Iterable[str],
    k: int,
    pairs: Mapping[str, tuple[str, str]] = PAIRS,
    options: Mapping[str, Any] | None = None,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Interval | None]:
    """``{name}_{pair}`` -> the bootstrap interval of each measure for each pair in ``sets``
    (module docstring); None for CKNNA and where the value is undefined."""
    check_bootstrap_options(resamples, level)
    measures = [MEASURES[name] for name in check_measures(names)]
    opts = measure_options(options)
    chosen = present_pairs(sets, pairs)
    n = next(iter(sets.values())).n
    device = next(iter(sets.values())).x.device
    generator = torch.Generator(device=device).manual_seed(seed)
    draws = [torch.randint(n, (n,), generator=generator, device=device) for _ in range(resamples)]
    out: dict[str, Interval | None] = {}
    by_rows = any(m.name not in PER_ITEM and m.name not in NO_INTERVAL for m in measures)
    total, done = resamples * len(chosen) if by_rows else 0, 0
    for pair, (a, b) in chosen.items():
        ra, rb = sets[a], sets[b]
        for m in measures:
            key = f"{m.name}_{pair}"
            if m.name in NO_INTERVAL or not math.isfinite(_value(m, ra, rb, k, opts)[0]):
                out[key] = None
            elif m.name in PER_ITEM:
                items = PER_ITEM[m.name](ra, rb, k)
                values = torch.stack([items[d].nanmean() for d in draws])
                out[key] = Interval(*percentile_interval(values, level), level, resamples, "items")
        global_measures = [m for m in measures if f"{m.name}_{pair}" not in out]  # resampled rows
        if not global_measures:
            continue
        values = {m.name: torch.empty(resamples, dtype=torch.float64) for m in global_measures}
        for i, d in enumerate(draws):
            sa, sb = (_resampled(r, d) for r in (ra, rb))
            for m in global_measures:
                if m.name in _RSA:
                    values[m.name][i] = _rsa_resampled(ra, rb, d, _RSA[m.name], opts["rsa_max_pairs"])
                else:
                    values[m.name][i] = _value(m, sa, sb, k, opts)[0]
            done += 1
            if on_step is not None:
                on_step(done, total)
        for m in global_measures:
            finite = values[m.name][torch.isfinite(values[m.name])]
            out[f"{m.name}_{pair}"] = (Interval(*percentile_interval(finite, level), level, len(finite), "rows")
                                       if len(finite) >= 2 else None)
    return out


_RSA = {"rsa": "spearman", "rsa_pearson": "pearson", "rsa_cosine": "cosine", "rsa_rho_a": "rho_a",
        "rsa_tau_a": "tau_a"}


def _resampled(r: Representation, draw: torch.Tensor) -> Representation:
    return Representation(r.x[draw], metric=r.metric, include_self=r.include_self, name=r.name)


def _rsa_resampled(ra: Representation, rb: Representation, draw: torch.Tensor, method: str, max_pairs: int) -> float:
    """RSA of the resampled items from the whole sets' pair distances, copies' pairs left out."""
    from bridgeeval.metrics.rsa_measures import compare_vectors, condensed_distances

    n = ra.n
    if n * (n - 1) // 2 > max_pairs:
        return float("nan")
    dist_a, dist_b = (r.memo(("rsa_distances", r.metric), lambda r=r: condensed_distances(r, r.metric))
                      for r in (ra, rb))
    i, j = torch.triu_indices(n, n, offset=1, device=draw.device)
    u, v = draw[i], draw[j]
    keep = u != v
    low, high = torch.minimum(u[keep], v[keep]), torch.maximum(u[keep], v[keep])
    index = low * n - low * (low + 1) // 2 + (high - low - 1)
    return compare_vectors(dist_a[index], dist_b.to(dist_a.device)[index], method)
