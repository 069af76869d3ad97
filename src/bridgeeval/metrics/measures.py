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
from bridgeeval.metrics import (
    distance_measures,
    kernel_measures,
    knn_measures,
    statistic_measures,
    subspace_measures,
    topology_measures,
)
from bridgeeval.metrics import (
    rsa_measures as rsa_module,
)
from bridgeeval.metrics.representation import Representation, paired

# Options a user may set (metrics.measure_options, score's --rbf-sigma ...) and their defaults.
OPTIONS: dict[str, Any] = {"rbf_sigma": None, "cca_dim": 10, "rsa_max_pairs": rsa_module.MAX_PAIRS,
                           "rsa_samples": rsa_module.N_SAMPLES, "rsa_seed": 0, "gulp_lambda": 0.0,
                           "rtd_trials": 10, "rtd_batch": 500, "rtd_seed": 0,
                           "imd_k": 5, "imd_probes": 1000, "imd_lanczos_steps": 10, "imd_exact_max": 2048,
                           "imd_seed": 0,
                           "gs_landmarks": 64, "gs_gamma": None, "gs_i_max": 100, "gs_repeats": 100, "gs_seed": 0}
# Integer options and their least value (checked by check_measure_options).
_INT_OPTIONS = {"cca_dim": 1, "rsa_max_pairs": 1, "rsa_samples": 1, "rsa_seed": 0, "rtd_trials": 1, "rtd_batch": 3,
                "rtd_seed": 0, "imd_k": 1, "imd_probes": 1, "imd_lanczos_steps": 1, "imd_exact_max": 0,
                "imd_seed": 0, "gs_landmarks": 3, "gs_i_max": 1, "gs_repeats": 1, "gs_seed": 0}

# Transformations of one set that a measure may be invariant to (ReSi's vocabulary): an orthogonal
# map, multiplication by a scalar, adding a vector to every row, a permutation of the columns, an
# invertible linear map, an invertible affine one.
TRANSFORMS = ("orthogonal", "isotropic_scaling", "translation", "permutation", "invertible_linear", "affine")
_ROTATION = frozenset({"orthogonal", "isotropic_scaling", "permutation"})  # neighbours and cosine distances
_SHAPE = _ROTATION | {"translation"}  # centred, rescaled comparisons
_LINEAR = _SHAPE | {"invertible_linear", "affine"}


@dataclass(frozen=True)
class Measure:
    name: str
    compute: Callable[[Representation, Representation, int, Mapping[str, Any]], float]
    takes_k: bool
    higher_is_better: bool
    summary: str
    # The structure of each set it reads (Representation.flat): a set without it leaves it undefined.
    reads: tuple[str, ...] = ("centred",)
    # The value of two sets that agree fully, the end of its range (a permutation null calibrates towards it).
    best: float = 1.0
    invariances: frozenset[str] = _ROTATION  # TRANSFORMS of either set that leave the value unchanged
    symmetric: bool = True  # m(A, B) == m(B, A)
    is_metric: bool = False  # a distance that satisfies the triangle inequality
    source: str = ""  # where its definition comes from
    paired: bool = True  # reads which row pairs with which (a one-set statistic does not: no null)
    tolerance: float = 1e-8  # relative agreement of values that should be equal (float32 engines: looser)


def _knn(fn) -> Callable:
    return lambda ra, rb, k, opts: fn(ra.neighbours(k), rb.neighbours(k).to(ra.x.device))


def _rsa(method: str) -> Callable:
    return lambda ra, rb, k, opts: rsa_module.rsa(
        ra, rb, method=method, metric=ra.metric, max_pairs=opts["rsa_max_pairs"], n_samples=opts["rsa_samples"],
        seed=opts["rsa_seed"])


def _cka(kernel: str, unbiased: bool) -> Callable:
    return lambda ra, rb, k, opts: kernel_measures.cka(ra, rb, kernel=kernel, unbiased=unbiased,
                                                       rbf_sigma=opts["rbf_sigma"])


def _pair(fn) -> Callable:
    return lambda ra, rb, k, opts: fn(ra, rb)


_NEIGHBOURS = ("neighbours",)
_CENTRED_ONLY = frozenset({"isotropic_scaling", "translation", "permutation"})  # per-column statistics
_RESI = "ReSi (Klabunde et al. 2024)"
_ALL = [
    # k-NN lists: one search per set serves them all.
    Measure("mnno", _knn(knn_measures.mnno_from_indices), True, True,
            "mean nearest-neighbour overlap (Collell & Moens 2018)", _NEIGHBOURS, source="Collell & Moens 2018"),
    Measure("mutual_knn", _knn(knn_measures.mnno_from_indices), True, True,
            "mutual k-NN alignment (Huh et al. 2024): the same quantity as mnno", _NEIGHBOURS,
            source="platonic-rep"),
    Measure("cycle_knn", _knn(knn_measures.cycle_knn_from_indices), True, True,
            "share of items found again among the A-neighbours of their B-neighbours", _NEIGHBOURS,
            symmetric=False, source="platonic-rep"),
    Measure("lcs_knn", _knn(knn_measures.lcs_from_indices), True, True,
            "longest common subsequence of the ordered k-NN lists / k", _NEIGHBOURS, source="platonic-rep"),
    Measure("edit_distance_knn", _knn(knn_measures.edit_from_indices), True, True,
            "1 - Levenshtein distance of the ordered k-NN lists / k", _NEIGHBOURS, source="platonic-rep"),
    Measure("jaccard_knn", _knn(knn_measures.jaccard_from_indices), True, True,
            "mean Jaccard similarity of the k-NN sets", _NEIGHBOURS, source=_RESI),
    Measure("rank_similarity", _knn(knn_measures.rank_similarity_from_indices), True, True,
            "rank-weighted agreement of the shared neighbours (Wang et al. 2020)", _NEIGHBOURS, source=_RESI),
    Measure("second_order_cosine", lambda ra, rb, k, opts: knn_measures.second_order_cosine(ra, rb, k), True, True,
            "cosine of each item's distances to its neighbours in both sets (Hamilton et al. 2016)", _NEIGHBOURS,
            source=_RESI),
    # Kernels.
    Measure("cka", _cka("linear", False), False, True, "linear CKA, biased HSIC (Kornblith et al. 2019)",
            invariances=_SHAPE, source="Kornblith et al. 2019"),
    Measure("unbiased_cka", _cka("linear", True), False, True, "linear CKA, unbiased HSIC (Song et al. 2012)",
            invariances=_SHAPE, source="Song et al. 2012"),
    Measure("cka_rbf", _cka("rbf", False), False, True, "RBF-kernel CKA, biased HSIC", invariances=_SHAPE,
            source="Kornblith et al. 2019"),
    Measure("unbiased_cka_rbf", _cka("rbf", True), False, True, "RBF-kernel CKA, unbiased HSIC", invariances=_SHAPE,
            source="Kornblith et al. 2019"),
    Measure("cknna", lambda ra, rb, k, opts: kernel_measures.cknna(ra, rb, k), True, True,
            "CKA restricted to mutual k nearest neighbours (Huh et al. 2024)", ("neighbours", "centred"),
            symmetric=False, source="platonic-rep"),  # k-NN masks are not symmetric, nor is its HSIC of them
    Measure("distance_correlation", _pair(distance_measures.distance_correlation), False, True,
            "distance correlation of the Euclidean distance matrices (Székely et al. 2007)", invariances=_SHAPE,
            source="Székely et al. 2007 (dcor)"),
    # Subspaces, CCA and regression.
    Measure("svcca", lambda ra, rb, k, opts: subspace_measures.svcca(ra, rb, opts["cca_dim"]), False, True,
            "mean canonical correlation of the top singular directions (Raghu et al. 2017)",
            invariances=_CENTRED_ONLY, source="platonic-rep"),
    Measure("pwcca", _pair(subspace_measures.pwcca), False, True,
            "projection-weighted mean canonical correlation (Morcos et al. 2018)", invariances=_CENTRED_ONLY,
            symmetric=False, source="Morcos et al. 2018"),
    Measure("eigenspace_overlap", _pair(subspace_measures.eigenspace_overlap), False, True,
            "overlap of the sets' column spaces (May et al. 2019)", (),
            invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation", "invertible_linear"}),
            source=_RESI),
    Measure("linear_regression", _pair(subspace_measures.linear_regression), False, True,
            "R^2 of regressing the centred A on the centred B", invariances=_SHAPE, symmetric=False,
            source=_RESI),
    Measure("gulp", lambda ra, rb, k, opts: subspace_measures.gulp(ra, rb, opts["gulp_lambda"]), False, False,
            "squared distance of the sets' ridge predictors (Boix-Adsera et al. 2022)", invariances=_LINEAR,
            best=0.0, source=_RESI),
    # Pairwise distances (RSA).
    Measure("rsa", _rsa("spearman"), False, True, "Spearman correlation of the pairwise distances (RSA)",
            ("distances",), source="Kriegeskorte et al. 2008"),
    Measure("rsa_pearson", _rsa("pearson"), False, True, "Pearson correlation of the pairwise distances (RSA)",
            ("distances",), source="Kriegeskorte et al. 2008"),
    Measure("rsa_cosine", _rsa("cosine"), False, True, "cosine of the two vectors of pairwise distances (RSA)",
            ("distances",), source="rsatoolbox"),
    Measure("rsa_rho_a", _rsa("rho_a"), False, True, "rho-a of the pairwise distances' ranks (RSA)",
            ("distances",), source="rsatoolbox"),
    Measure("rsa_tau_a", _rsa("tau_a"), False, True, "Kendall's tau-a of the pairwise distances (RSA)",
            ("distances",), source="rsatoolbox"),
    Measure("rsa_cosine_cov", lambda ra, rb, k, opts: distance_measures.rsa_whitened(ra, rb, "cosine"), False, True,
            "cosine of the double-centred distance matrices (rsatoolbox's whitened cosine_cov)", ("distances",),
            source="rsatoolbox (Diedrichsen et al. 2021)"),
    Measure("rsa_corr_cov", lambda ra, rb, k, opts: distance_measures.rsa_whitened(ra, rb, "corr"), False, True,
            "correlation of the whitened distance matrices (rsatoolbox's corr_cov)", ("distances",),
            source="rsatoolbox (Diedrichsen et al. 2021)"),
    Measure("rsm_norm_difference", _pair(distance_measures.rsm_norm_difference), False, False,
            "Frobenius norm of the difference of the Euclidean distance matrices", (),
            invariances=frozenset({"orthogonal", "translation", "permutation"}), is_metric=True, best=0.0,
            source=_RESI),
    # Alignment by rotation or matching.
    Measure("procrustes", lambda ra, rb, k, opts: subspace_measures.procrustes(ra, rb), False, False,
            "orthogonal Procrustes distance of the centred, unit-norm sets (0 = same shape)", best=0.0,
            invariances=_SHAPE, is_metric=True, source="Ding et al. 2021 (ReSi)"),
    Measure("procrustes_angular", _pair(subspace_measures.procrustes_angular), False, False,
            "angular shape metric of the centred sets (Williams et al. 2021)", best=0.0, invariances=_SHAPE,
            is_metric=True, source="Williams et al. 2021 (netrep)"),
    Measure("procrustes_size_shape", _pair(subspace_measures.procrustes_size_shape), False, False,
            "Procrustes distance of the centred sets, not rescaled", (), best=0.0,
            invariances=frozenset({"orthogonal", "translation", "permutation"}), is_metric=True, source=_RESI),
    Measure("permutation_procrustes", _pair(subspace_measures.permutation_procrustes), False, False,
            "distance of the sets after the best matching of their columns", (), best=0.0,
            invariances=frozenset({"permutation"}), is_metric=True, source=_RESI),
    Measure("aligned_cosine", _pair(subspace_measures.aligned_cosine), False, True,
            "mean cosine of the rows after the orthogonal Procrustes rotation", (), source=_RESI),
    Measure("hard_correlation_match", _pair(subspace_measures.hard_correlation_match), False, True,
            "mean correlation of the columns matched one to one (Li et al. 2015)", invariances=_CENTRED_ONLY,
            source=_RESI),
    Measure("soft_correlation_match", _pair(subspace_measures.soft_correlation_match), False, True,
            "mean best correlation of each column with one of the other set (Li et al. 2015)",
            invariances=_CENTRED_ONLY, source=_RESI),
    # One-set statistics compared.
    Measure("magnitude_difference", _pair(statistic_measures.magnitude_difference), False, False,
            "difference of the norms of the sets' means", (), best=0.0,
            invariances=frozenset({"orthogonal", "permutation"}), source=_RESI, paired=False),
    Measure("concentricity_difference", _pair(statistic_measures.concentricity_difference), False, False,
            "difference of the rows' mean cosine with their set's mean", (), best=0.0, source=_RESI, paired=False),
    Measure("uniformity_difference", _pair(statistic_measures.uniformity_difference), False, False,
            "difference of the sets' uniformity (Wang & Isola 2020)", (), best=0.0,
            invariances=frozenset({"orthogonal", "translation", "permutation"}), source=_RESI, paired=False),
    # Topology and heat-kernel spectra, seeded (Euclidean, as their sources define them).
    Measure("rtd", lambda ra, rb, k, opts: topology_measures.rtd(
        ra, rb, opts["rtd_trials"], opts["rtd_batch"], opts["rtd_seed"]), False, False,
        "representation topology divergence: H1 bars of the R-Cross-Barcode (Barannikov et al. 2022)",
        best=0.0, invariances=_SHAPE, source="Barannikov et al. 2022 (ReSi)", tolerance=1e-5),
    Measure("imd", lambda ra, rb, k, opts: topology_measures.imd(
        ra, rb, opts["imd_k"], opts["imd_probes"], opts["imd_lanczos_steps"], opts["imd_exact_max"],
        opts["imd_seed"]), False, False,
        "largest weighted gap of the k-NN graphs' heat traces (Tsitsulin et al. 2020)", best=0.0,
        invariances=_SHAPE, source="Tsitsulin et al. 2020 (ReSi)", paired=False),
    Measure("geometry_score", lambda ra, rb, k, opts: topology_measures.geometry_score(
        ra, rb, opts["gs_landmarks"], opts["gs_gamma"], opts["gs_i_max"], opts["gs_repeats"], opts["gs_seed"]),
        False, False, "squared distance of the witness complexes' mean relative living times of H1 "
        "(Khrulkov & Oseledets 2018)", best=0.0, invariances=_SHAPE, source="Khrulkov & Oseledets 2018 (ReSi)",
        paired=False),
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
    value = _at_most_best(m, float(m.compute(ra, rb, k, opts)))
    if not math.isfinite(value):  # a zero denominator the sets do not show (e.g. unbiased HSIC <= 0)
        return float("nan"), f"{m.name}'s normalisation is not positive for these sets"
    return value, None


def _at_most_best(m: Measure, value: float) -> float:
    """``best`` ends the measure's range (no two sets agree more than fully); a value past it by
    rounding (CKA of a scaled copy at 1 + 2^-52, a distance at -4e-15) is put back on it. A larger
    excursion is left as it is, for the tests to see."""
    excess = value - m.best if m.higher_is_better else m.best - value
    return m.best if 0.0 < excess <= m.tolerance * max(1.0, abs(m.best)) else value


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
    for key, low in _INT_OPTIONS.items():
        value = opts[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise BridgeEvalError(f"{key}={value!r}: must be an integer, {low} or more")
    lam = opts["gulp_lambda"]
    if not (isinstance(lam, (int, float)) and not isinstance(lam, bool) and math.isfinite(lam) and lam >= 0):
        raise BridgeEvalError(f"gulp_lambda={lam!r}: must be a finite number, 0 or more")
    gamma = opts["gs_gamma"]
    if gamma is not None and not (isinstance(gamma, (int, float)) and not isinstance(gamma, bool)
                                  and math.isfinite(gamma) and gamma > 0):
        raise BridgeEvalError(f"gs_gamma={gamma!r}: must be a positive number, or null for the source's N / 5000 / 128")
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
