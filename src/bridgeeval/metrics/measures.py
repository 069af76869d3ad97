"""One registry of named alignment measures and one dispatcher over them.

``MEASURES[name]`` says what a measure is (its function, whether it takes K, which way is better);
:func:`measure` computes one for two sets, :func:`alignment_report` several for several pairs of
sets, each set's derived quantities (neighbour lists above all) computed once and shared through
:class:`~bridgeeval.metrics.representation.Representation`. Report keys are ``{name}_{pair}``, e.g.
``cka_input_mapped`` for CKA(X, f(X)), so ``mnno`` keeps the keys of the cross-modal report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import kernel_measures, knn_measures, rsa_measures as rsa_module, subspace_measures
from bridgeeval.metrics.representation import Representation, paired

# Options a user may set (metrics.measure_options, score's --rbf-sigma ...) and their defaults.
OPTIONS: dict[str, Any] = {"rbf_sigma": None, "cca_dim": 10, "rsa_max_pairs": rsa_module.MAX_PAIRS,
                           "rsa_samples": rsa_module.N_SAMPLES, "rsa_seed": 0}


@dataclass(frozen=True)
class Measure:
    name: str
    compute: Callable[[Representation, Representation, int, Mapping[str, Any]], float]
    takes_k: bool
    higher_is_better: bool
    summary: str
    # The structure of each set it reads (Representation.flat): a set without it leaves it undefined.
    reads: tuple[str, ...] = ("centred",)
    best: float = 1.0  # the value of two sets that agree fully (a permutation null calibrates towards it)


def _knn(fn) -> Callable:
    return lambda ra, rb, k, opts: fn(ra.neighbours(k), rb.neighbours(k).to(ra.x.device))


def _rsa(method: str) -> Callable:
    return lambda ra, rb, k, opts: rsa_module.rsa(
        ra, rb, method=method, metric=ra.metric, max_pairs=opts["rsa_max_pairs"], n_samples=opts["rsa_samples"],
        seed=opts["rsa_seed"])


def _cka(kernel: str, unbiased: bool) -> Callable:
    return lambda ra, rb, k, opts: kernel_measures.cka(ra, rb, kernel=kernel, unbiased=unbiased,
                                                       rbf_sigma=opts["rbf_sigma"])


_NEIGHBOURS = ("neighbours",)
_ALL = [
    Measure("mnno", _knn(knn_measures.mnno_from_indices), True, True,
            "mean nearest-neighbour overlap (Collell & Moens 2018)", _NEIGHBOURS),
    Measure("mutual_knn", _knn(knn_measures.mnno_from_indices), True, True,
            "mutual k-NN alignment (Huh et al. 2024): the same quantity as mnno", _NEIGHBOURS),
    Measure("cycle_knn", _knn(knn_measures.cycle_knn_from_indices), True, True,
            "share of items found again among the A-neighbours of their B-neighbours", _NEIGHBOURS),
    Measure("lcs_knn", _knn(knn_measures.lcs_from_indices), True, True,
            "longest common subsequence of the ordered k-NN lists / k", _NEIGHBOURS),
    Measure("edit_distance_knn", _knn(knn_measures.edit_from_indices), True, True,
            "1 - Levenshtein distance of the ordered k-NN lists / k", _NEIGHBOURS),
    Measure("cka", _cka("linear", False), False, True, "linear CKA, biased HSIC (Kornblith et al. 2019)"),
    Measure("unbiased_cka", _cka("linear", True), False, True, "linear CKA, unbiased HSIC (Song et al. 2012)"),
    Measure("cka_rbf", _cka("rbf", False), False, True, "RBF-kernel CKA, biased HSIC"),
    Measure("unbiased_cka_rbf", _cka("rbf", True), False, True, "RBF-kernel CKA, unbiased HSIC"),
    Measure("cknna", lambda ra, rb, k, opts: kernel_measures.cknna(ra, rb, k), True, True,
            "CKA restricted to mutual k nearest neighbours (Huh et al. 2024)", ("neighbours", "centred")),
    Measure("svcca", lambda ra, rb, k, opts: subspace_measures.svcca(ra, rb, opts["cca_dim"]), False, True,
            "mean canonical correlation of the top singular directions (Raghu et al. 2017)"),
    Measure("rsa", _rsa("spearman"), False, True, "Spearman correlation of the pairwise distances (RSA)",
            ("distances",)),
    Measure("rsa_pearson", _rsa("pearson"), False, True, "Pearson correlation of the pairwise distances (RSA)",
            ("distances",)),
    Measure("procrustes", lambda ra, rb, k, opts: subspace_measures.procrustes(ra, rb), False, False,
            "orthogonal Procrustes distance of the centred, unit-norm sets (0 = same shape)", best=0.0),
]
MEASURES: dict[str, Measure] = {m.name: m for m in _ALL}
# The three pairs of a cross-modal evaluation: report key suffix -> (set, set).
PAIRS = {"input_mapped": ("input", "mapped"), "target_mapped": ("target", "mapped"),
         "input_target": ("input", "target")}


def check_measures(names: Iterable[str]) -> tuple[str, ...]:
    """The names, checked against the registry (one line naming an unknown one), duplicates dropped."""
    names = tuple(dict.fromkeys(str(n) for n in names))
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        raise BridgeEvalError(f"unknown measure {unknown[0]!r}; choose from {', '.join(MEASURES)}")
    return names


def measure_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The defaults of :data:`OPTIONS` updated by ``options`` (an unknown key is one line)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BridgeEvalError(f"unknown measure option {unknown[0]!r}; known: {', '.join(OPTIONS)}")
    return {**OPTIONS, **options}


def measure(name: str, a, b, *, k: int = 10, metric: str = "cosine", include_self: bool = False, **options) -> float:
    """One named measure of two paired sets (arrays, tensors or ``Representation`` objects); NaN
    where it is undefined for them (:func:`undefined_reason` says why).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [3.0, 1.0], [2.0, 5.0], [4.0, 4.0]])
        >>> measure("mnno", x, x, k=2), round(measure("cka", x, 2 * x), 6), measure("procrustes", x, x) < 1e-7
        (1.0, 1.0, True)
    """
    (name,) = check_measures([name])
    ra, rb = paired(a, b, metric, include_self)
    return _value(MEASURES[name], ra, rb, k, measure_options(options))[0]


def undefined_reason(measure_: Measure, ra: Representation, rb: Representation) -> str | None:
    """Why ``measure_`` is undefined for these two sets before computing it, or None: a set
    without the structure it reads (``Representation.flat``)."""
    for r in (ra, rb):
        for structure in measure_.reads:
            reason = r.flat(structure)
            if reason:
                return reason
    return None


def _value(m: Measure, ra: Representation, rb: Representation, k: int, opts: Mapping[str, Any]) -> tuple[float, str | None]:
    """The measure's value and, where it is undefined (NaN), why."""
    reason = undefined_reason(m, ra, rb)
    if reason:
        return float("nan"), reason
    value = float(m.compute(ra, rb, k, opts))
    if not math.isfinite(value):  # a zero denominator the sets do not show (e.g. unbiased HSIC <= 0)
        return float("nan"), f"{m.name}'s normalisation is not positive for these sets"
    return value, None


def alignment_report(
    sets: Mapping[str, Representation],
    names: Iterable[str],
    k: int,
    pairs: Mapping[str, tuple[str, str]] = PAIRS,
    options: Mapping[str, Any] | None = None,
    reasons: dict[str, str] | None = None,
) -> dict[str, float]:
    """``{name}_{pair}`` for every measure and pair whose two sets are in ``sets``.

    ``sets`` maps names (``input``, ``target``, ``mapped``) to representations that share one
    neighbour convention; reusing the same objects across calls reuses their cached parts (the
    validation hook keeps X's and Y's for the whole training). An undefined value is NaN, and
    ``reasons`` (when given) receives why under its key.
    """
    names, opts = check_measures(names), measure_options(options)
    out = {}
    for pair, (a, b) in present_pairs(sets, pairs).items():
        for name in names:
            key = f"{name}_{pair}"
            out[key], reason = _value(MEASURES[name], sets[a], sets[b], k, opts)
            if reason and reasons is not None:
                reasons[key] = reason
    return out


def present_pairs(sets: Mapping[str, Any], pairs: Mapping[str, tuple[str, str]] = PAIRS) -> dict[str, tuple[str, str]]:
    """The pairs whose two sets are both in ``sets`` (two files: (X, Y) only)."""
    return {pair: (a, b) for pair, (a, b) in pairs.items() if a in sets and b in sets}


def check_measure_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`measure_options`, with each value's type and range checked (one line naming the key)."""
    opts = measure_options(options)
    sigma = opts["rbf_sigma"]
    if sigma is not None and not (isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0):
        raise BridgeEvalError(f"rbf_sigma={sigma!r}: must be a positive number, or null for each set's RMS distance")
    for key, low in (("cca_dim", 1), ("rsa_max_pairs", 1), ("rsa_samples", 1), ("rsa_seed", 0)):
        value = opts[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise BridgeEvalError(f"{key}={value!r}: must be an integer, {low} or more")
    return opts


# The pairs that involve f(X), which change as the map trains; (X, Y) does not.
MAPPED_PAIRS = {key: pair for key, pair in PAIRS.items() if "mapped" in pair}
FIXED_PAIRS = {key: pair for key, pair in PAIRS.items() if "mapped" not in pair}


class MappedAlignment:
    """The measures of f(X) against a fixed X and Y, called once per evaluation (every epoch in
    the validation hook): X's and Y's representations, and so their neighbour lists and
    self-terms, live across calls, and the (X, Y) values are computed on the first call only.

    Example:
        >>> import torch
        >>> x, y = torch.randn(40, 3), torch.randn(40, 5)
        >>> align = MappedAlignment(["mnno", "cka"], k=3, metric="cosine", include_self=False)
        >>> sorted(align(x, y, 2 * y))
        ['cka_input_mapped', 'cka_input_target', 'cka_target_mapped']
        >>> round(align(x, y, 2 * y)["cka_target_mapped"], 6)
        1.0
    """

    def __init__(self, names: Iterable[str], k: int, metric: str, include_self: bool,
                 options: Mapping[str, Any] | None = None):
        # mnno's values are the cross-modal report's own keys: not computed twice.
        self.names = tuple(n for n in check_measures(names) if n != "mnno")
        self.options = check_measure_options(options)
        self.k, self.metric, self.include_self = k, metric, include_self
        self._sets: dict[str, Representation] | None = None
        self._fixed: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self.names)

    def _rep(self, t, name: str, neighbours: torch.Tensor | None) -> Representation:
        cached = {self.k: neighbours} if neighbours is not None else None
        return Representation(t, metric=self.metric, include_self=self.include_self, name=name, neighbours=cached)

    def __call__(self, x, y, mapped, neighbours: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
        if not self.names:
            return {}
        lists = dict(neighbours or {})
        if self._sets is None or not _same(self._sets["input"].x, x) or not _same(self._sets["target"].x, y):
            self._sets = {"input": self._rep(x, "input", lists.get("input")),
                          "target": self._rep(y, "target", lists.get("target"))}
            self._fixed = alignment_report(self._sets, self.names, self.k, FIXED_PAIRS, self.options)
        sets = {**self._sets, "mapped": self._rep(mapped, "mapped", lists.get("mapped"))}
        return {**alignment_report(sets, self.names, self.k, MAPPED_PAIRS, self.options), **self._fixed}


def _same(a: torch.Tensor, b) -> bool:
    b = torch.as_tensor(b)
    return a.shape == b.shape and a.device == b.device and bool(torch.equal(a, b.to(a.dtype)))


def check_measures_apply(names: Iterable[str], options: Mapping[str, Any] | None, n: int, dims: Iterable[int],
                         k: int) -> None:
    """One line naming the first measure that cannot be computed on sets of ``n`` items of these
    widths (checked before training, not at its first validation epoch)."""
    names, opts, narrowest = check_measures(names), check_measure_options(options), min(dims)
    if "svcca" in names and (opts["cca_dim"] > narrowest or opts["cca_dim"] >= n):
        raise BridgeEvalError(f"measure svcca: cca_dim={opts['cca_dim']} needs at least that many dimensions and more "
                              f"items; the sets have {narrowest} dimensions (the narrowest) and {n} items")
    if "cknna" in names and k < 2:
        raise BridgeEvalError("measure cknna needs k >= 2")
    needs_four = [m for m in names if m in ("unbiased_cka", "unbiased_cka_rbf", "cknna")]
    if needs_four and n < 4:
        raise BridgeEvalError(f"measure {needs_four[0]} needs at least 4 items, got {n}")
