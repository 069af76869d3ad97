"""Permutation nulls: how far a measure's value is above what unpaired sets would give.

For a pair of sets (A, B) the null breaks the pairing: B's rows are shuffled ``permutations``
times and every measure is computed again on (A, B[pi]). Definitions follow Groger, Wen & Brbic
(2026) and their ``calibrated-similarity`` package (``calibrate``):

* ``tau``: the ceil((1 - alpha)(K + 1))-th smallest of the K + 1 values (observed and null);
* ``p_value``: the add-one right tail (1 + #{null >= observed}) / (K + 1);
* ``calibrated``: (observed - tau) / (best - tau), clipped to [0, 1], ``best`` the measure's
  largest value (1 for every similarity here).

A measure where lower is closer (Procrustes distance) is read mirrored: the left tail, tau from
the alpha end, and (tau - observed) / (tau - 0).

Only the pairing changes between permutations, so each set's own work (neighbour lists, centred
copies, self-similarity terms) is done once: B's permuted ``Representation`` carries it over
(``Representation.permuted``), and its neighbour lists are B's renumbered, ties kept in B's order.

``chance`` is the null's exact mean where it has a closed form: for mNNO (and mutual k-NN, the
same quantity) k / (N - 1), each item's list a uniformly random k of the N - 1 others under a
random pairing; with self counted (each item its own first neighbour, so no repeated rows)
(1 + (k - 1)^2 / (N - 1)) / k.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.measures import MEASURES, PAIRS, Measure, _value, check_measures, measure_options, present_pairs
from bridgeeval.metrics.overlap import mnno_chance
from bridgeeval.metrics.representation import Representation

# The measures whose null mean is known exactly (module docstring).
_OVERLAP = ("mnno", "mutual_knn")
# RBF CKA's estimators (unbiased or not): their kernels are kept for the shuffles when they fit.
# Linear CKA is not: its d_a x d_b cross-product cost less than gathering the reordered N x N
# kernel in every case measured (1,962 x 64/128 and 10,000 x 2,048).
_KERNEL_CKA = {"cka_rbf": False, "unbiased_cka_rbf": True}
KERNEL_BUDGET = 2 << 30  # bytes of N x N kernels a null keeps (two sets' float64 kernels at N = 11,585)


@dataclass(frozen=True)
class Null:
    """A measure's permutation null and what it says of the observed value."""

    permutations: int
    alpha: float
    mean: float
    tau: float
    p_value: float
    calibrated: float
    chance: float | None = None  # the null's exact mean, where it has a closed form

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["chance"] is None:
            del out["chance"]
        return out


def check_null_options(permutations: int, alpha: float) -> None:
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise BridgeEvalError(f"permutations={permutations!r}: must be a positive integer")
    if not 0.0 < alpha < 1.0:
        raise BridgeEvalError(f"alpha={alpha!r}: must lie strictly between 0 and 1")


def calibrate_value(observed: float, null: torch.Tensor, alpha: float, higher_is_better: bool = True,
                    best: float = 1.0) -> Null:
    """The null's summary for one observed value and its K null values (module docstring).

    Example (K = 4: tau is the 5th smallest of the 5 values at alpha = 0.05):
        >>> null = calibrate_value(0.9, torch.tensor([0.1, 0.2, 0.3, 0.4]), alpha=0.05)
        >>> null.tau, null.p_value, null.calibrated
        (0.9, 0.2, 0.0)
        >>> round(calibrate_value(0.9, torch.tensor([0.1, 0.2, 0.3, 0.4]), alpha=0.25).calibrated, 6)
        0.833333
    """
    sign = 1.0 if higher_is_better else -1.0  # a lower-is-closer measure, mirrored
    values = null.double() * sign
    k = values.numel()
    s_obs, s_best = observed * sign, best * sign
    combined = torch.sort(torch.cat([values.new_tensor([s_obs]), values])).values
    index = min(max(math.ceil((1.0 - alpha) * (k + 1)) - 1, 0), k)
    s_tau = float(combined[index])
    p_value = (1.0 + float((values >= s_obs).sum())) / (k + 1)
    calibrated = min(max((s_obs - s_tau) / max(s_best - s_tau, 1e-12), 0.0), 1.0)
    return Null(permutations=k, alpha=alpha, mean=float(values.mean()) * sign, tau=s_tau * sign,
                p_value=p_value, calibrated=calibrated)


def chance_level(name: str, n: int, k: int, include_self: bool) -> float | None:
    """The exact mean of ``name``'s permutation null for N items, or None (no closed form here).

    Example:
        >>> chance_level("mnno", 11, 5, include_self=False)
        0.5
        >>> chance_level("cka", 11, 5, include_self=False) is None
        True
    """
    return mnno_chance(n, k, include_self) if name in _OVERLAP else None


def permutation_nulls(
    sets: Mapping[str, Representation],
    names: Iterable[str],
    k: int,
    pairs: Mapping[str, tuple[str, str]] = PAIRS,
    options: Mapping[str, Any] | None = None,
    *,
    permutations: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    observed: Mapping[str, float] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    kernel_budget: int = KERNEL_BUDGET,
) -> dict[str, Null | None]:
    """``{name}_{pair}`` -> the permutation null of each measure for each pair in ``sets``
    (``alignment_report``'s keys); None where the observed value is undefined, and for a one-set
    statistic (``Measure.paired`` False), which no shuffle of the pairing can change.

    Each pair's second set is shuffled, the same ``permutations`` shuffles for every measure of
    the pair, drawn by ``torch.randperm`` from a generator seeded with ``seed`` on the sets'
    device (so a pair's shuffles are those of ``calibrated_similarity.calibrate`` with the same
    generator). ``observed`` may pass values already computed; ``on_step(done, total)`` is
    called after each shuffle. RBF CKA's kernels (N x N, float64) are kept while they fit in
    ``kernel_budget`` bytes: a shuffle is then one gather of the second kernel and a dot product
    instead of the kernels' exponentials again.
    """
    check_null_options(permutations, alpha)
    measures = [MEASURES[name] for name in check_measures(names)]
    opts, observed = measure_options(options), dict(observed or {})
    chosen = present_pairs(sets, pairs)
    total, done, out = permutations * len(chosen), 0, {}
    kernels = _Kernels(opts["rbf_sigma"], kernel_budget)
    for pair, (a, b) in chosen.items():
        ra, rb = sets[a], sets[b]
        values = {m.name: observed.get(f"{m.name}_{pair}") for m in measures}
        for m in measures:
            if values[m.name] is None:
                values[m.name] = _value(m, ra, rb, k, opts)[0]
        live = [m for m in measures if m.paired and math.isfinite(values[m.name])]
        by_kernel = {m.name: kernels.cka(m.name, ra, rb) for m in live if m.name in _KERNEL_CKA}
        null = {m.name: torch.empty(permutations, dtype=torch.float64) for m in live}
        generator = torch.Generator(device=rb.x.device).manual_seed(seed)
        for i in range(permutations):
            perm = torch.randperm(rb.n, generator=generator, device=rb.x.device)
            shuffled = rb.permuted(perm)
            for m in live:
                fast = by_kernel.get(m.name)
                null[m.name][i] = fast(perm) if fast is not None else _value(m, ra, shuffled, k, opts)[0]
            done += 1
            if on_step is not None:
                on_step(done, total)
        for m in measures:
            out[f"{m.name}_{pair}"] = _summary(m, values[m.name], null.get(m.name), alpha, ra, rb, k)
    return out


def _summary(m: Measure, observed: float, null: torch.Tensor | None, alpha: float, ra: Representation,
             rb: Representation, k: int) -> Null | None:
    if null is None:
        return None
    if not bool(torch.isfinite(null).all()):
        raise BridgeEvalError(f"{m.name}: undefined for a shuffled pairing although defined for the observed one")
    result = calibrate_value(observed, null, alpha, m.higher_is_better, m.best)
    chance = chance_level(m.name, ra.n, k, ra.include_self) if _self_first(ra, rb, k) else None
    return result if chance is None else Null(**{**asdict(result), "chance": chance})


def _self_first(ra: Representation, rb: Representation, k: int) -> bool:
    """Whether the closed-form chance holds: with self counted it assumes each item in its own
    list, which rows tied at distance 0 (duplicates: a collapsed map) break, ties going to the
    lower index. The null itself needs no such assumption."""
    if not ra.include_self:
        return True
    return all(bool((r.neighbours(k) == torch.arange(r.n, device=r.x.device).unsqueeze(1)).any(dim=1).all())
               for r in (ra, rb))


class _Kernels:
    """Each set's N x N RBF kernel, kept across pairs and shuffles while the budget allows. With the
    second kernel's rows and columns reordered, L' = L[pi][:, pi], CKA needs sum(K * L') per
    shuffle; the row sums, traces and self terms only move with pi (kernel_measures' formulas)."""

    def __init__(self, rbf_sigma: float | None, budget: int):
        self.rbf_sigma, self.budget, self.used = rbf_sigma, budget, 0
        self._kept: dict[tuple[int, str], torch.Tensor] = {}

    def kernel(self, r: Representation) -> torch.Tensor | None:
        if id(r) not in self._kept:
            size = r.n * r.n * 8
            if self.used + size > self.budget:
                return None
            self.used += size
            self._kept[id(r)] = _rbf_kernel(r, self.rbf_sigma)
        return self._kept[id(r)]

    def cka(self, name: str, ra: Representation, rb: Representation) -> Callable[[torch.Tensor], float] | None:
        unbiased = _KERNEL_CKA[name]
        ka, kb = self.kernel(ra), self.kernel(rb)
        if ka is None or kb is None:
            return None
        n = ra.n
        row_k, row_l, diag_k, diag_l = ka.sum(dim=1), kb.sum(dim=1), ka.diagonal(), kb.diagonal()
        self_a = _hsic(float(torch.dot(ka.reshape(-1), ka.reshape(-1))), row_k, row_k, diag_k, diag_k, n, unbiased)
        self_b = _hsic(float(torch.dot(kb.reshape(-1), kb.reshape(-1))), row_l, row_l, diag_l, diag_l, n, unbiased)
        from bridgeeval.metrics.kernel_measures import _ratio

        def value(perm: torch.Tensor) -> float:
            moved = kb.index_select(0, perm).index_select(1, perm)
            cross = float(torch.dot(ka.reshape(-1), moved.reshape(-1)))
            return _ratio(_hsic(cross, row_k, row_l[perm], diag_k, diag_l[perm], n, unbiased), self_a, self_b)

        return value


def _rbf_kernel(r: Representation, rbf_sigma: float | None) -> torch.Tensor:
    """The set's RBF kernel as CKA reads it: of the centred copy, at the given width (each set's
    RMS distance where None)."""
    from bridgeeval.metrics.kernel_measures import _rbf_block, rms_distance

    c = r.centred()
    sigma = r.in_copy_units(rbf_sigma if rbf_sigma is not None else rms_distance(r))
    return _rbf_block(c, c.pow(2).sum(dim=1), 0, r.n, 0, r.n, sigma)


def _hsic(product: float, row_k: torch.Tensor, row_l: torch.Tensor, diag_k: torch.Tensor, diag_l: torch.Tensor,
          n: int, unbiased: bool) -> float:
    """HSIC of K and L from sum(K * L), their row sums and diagonals (kernel_measures' estimators)."""
    from bridgeeval.metrics.kernel_measures import _unbiased_hsic

    if not unbiased:  # tr(K H L H) = sum(K * L) - 2/N (K1).(L1) + (1'K1)(1'L1)/N^2
        return product - 2.0 / n * float(row_k @ row_l) + float(row_k.sum()) * float(row_l.sum()) / (n * n)
    rk, rl = row_k - diag_k, row_l - diag_l  # K~1, L~1: the diagonals removed
    trace_term = product - float(diag_k @ diag_l)
    return _unbiased_hsic(trace_term, float(rk.sum()), float(rl.sum()), float(rk @ rl), n)
