"""``bridgeeval bench --measures``: each alignment measure, ours against the dense form
platonic-rep computes (``bridgeeval.reference.platonic``: N x N kernels, full sorts), or scipy
where platonic-rep has none (RSA, Procrustes), or for ReSi's, netrep's and rsatoolbox's measures
their plain dense forms (``bridgeeval.reference.dense``), dcor and rsatoolbox; same data, same
process, one measure at a time.
SVCCA has two: platonic-rep's form with the exact SVD (the same quantity as ours) and its own
randomised ``svd_lowrank`` (faster, but another value on flat spectra).

The data: X ~ N(0, 1) of N x d and Y = X W / sqrt(d) + noise (float32), rows unit-normalised for
the k-NN family and CKNNA (platonic-rep's scripts normalise before those). Each of ours starts from
fresh sets (its own neighbour searches included); peak extra memory is the resident set's
high-water mark above the level before the call (Linux ``clear_refs``; sampled where that fails),
from a heap trimmed of what earlier calls freed (``bridgeeval.bench.release_free_memory``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from bridgeeval.bench import PeakRSS, release_free_memory
from bridgeeval.metrics.measures import MEASURES, measure

DEFAULT_MEASURE_SIZES = ((10000, 2048), (50000, 2048))
REFERENCE_MAX_N = 20000  # the dense forms need several N x N float32 matrices (1.6 GB each at 20,000)
# References that need far more: dcor holds several N x N float64 matrices (7.8 GiB at 2,000 rows);
# rsatoolbox's exact comparators beyond the pairs that ours computes exactly compare with an estimate.
REFERENCE_MAX_N_OF = {"distance_correlation": 2000, "rsa_cosine": 4096, "rsa_rho_a": 4096, "rsa_tau_a": 4096,
                      "rsa_cosine_cov": 2000, "rsa_corr_cov": 2000,  # rsatoolbox's sparse N^2 x N indicators
                      # gudhi's Rips builds every triangle of 2N points; IMD's takes 256 dense expm. (The
                      # Geometry Score's brute-force witness filtration is in the tests only, at 8 landmarks.)
                      "rtd": 20, "imd": 600}
UNIT_ROWS = {"mnno", "mutual_knn", "cycle_knn", "lcs_knn", "edit_distance_knn", "cknna", "jaccard_knn",
             "rank_similarity", "second_order_cosine"}


class PeakMemory:
    """Peak resident memory above the level at entry: the kernel's high-water mark, reset on
    entry through ``/proc/self/clear_refs``; a sampling thread where that cannot be written."""

    def __enter__(self):
        release_free_memory()
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self._sampler = None
        except OSError:
            self._sampler = PeakRSS().__enter__()
        self.base = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self._sampler is not None:
            self._sampler.__exit__(*exc)
            self.extra = self._sampler.extra
        else:
            self.extra = max(0, _status_kib("VmHWM") * 1024 - self.base)


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def bench_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(d, d, generator=gen) / math.sqrt(d)
    y = x @ w + torch.randn(n, d, generator=gen)
    return x.numpy(), y.numpy()


def references(name: str, k: int, rbf_sigma: tuple[float, float]) -> list[tuple[str, Callable]]:
    """Each reference of ``name`` (a label and a function of two float32 tensors): the dense form,
    and for SVCCA also platonic-rep's own randomised ``svd_lowrank`` (faster, but approximate)."""
    from bridgeeval.reference import platonic as p

    found = reference(name, k, rbf_sigma)
    extra = [("platonic-rep svd_lowrank", lambda a, b: p.svcca_lowrank(a, b, 10))] if name == "svcca" else []
    return ([found] if found else []) + extra


def reference(name: str, k: int, rbf_sigma: tuple[float, float]) -> tuple[str, Callable] | None:
    """The dense form of ``name`` (a label and a function of two float32 tensors), or None."""
    from bridgeeval.reference import platonic as p

    table = {
        "mnno": lambda a, b: p.mutual_knn(a, b, k),
        "mutual_knn": lambda a, b: p.mutual_knn(a, b, k),
        "cycle_knn": lambda a, b: p.cycle_knn(a, b, k),
        "lcs_knn": lambda a, b: p.lcs_knn(a, b, k),
        "edit_distance_knn": lambda a, b: p.edit_distance_knn(a, b, k),
        "cka": lambda a, b: p.cka(a, b),
        "unbiased_cka": lambda a, b: p.cka(a, b, unbiased=True),
        "cknna": lambda a, b: p.cknna(a, b, k),
        "svcca": lambda a, b: p.svcca(a, b, 10),
    }
    if name == "svcca":  # its own is randomised (svd_lowrank, the second reference): ours is exact
        return "platonic-rep's form, exact SVD", table[name]
    if name in table:
        return "platonic-rep", table[name]
    if name in ("cka_rbf", "unbiased_cka_rbf"):
        # One width for both sets, as platonic-rep takes; ours is given the same.
        return "platonic-rep", lambda a, b: p.cka(a, b, kernel="rbf", rbf_sigma=rbf_sigma[0],
                                                  unbiased=name.startswith("unbiased"))
    if name in ("rsa", "rsa_pearson", "procrustes"):
        return "scipy", lambda a, b: _scipy(name, a.numpy(), b.numpy())
    return _dense_reference(name, k)


def _dense_reference(name: str, k: int) -> tuple[str, Callable] | None:
    """ReSi's, netrep's and rsatoolbox's measures in their plain dense forms (``reference.dense``)."""
    from bridgeeval.reference import dense

    if name == "distance_correlation":
        return "dcor", dense.distance_correlation
    if name.startswith("rsa_"):
        method = {"rsa_cosine": "cosine", "rsa_rho_a": "rho-a", "rsa_tau_a": "tau-a", "rsa_cosine_cov": "cosine_cov",
                  "rsa_corr_cov": "corr_cov"}[name]
        return "rsatoolbox", lambda a, b: dense.rsa_comparator(a, b, method)
    if name in ("rtd", "imd"):  # gudhi's full Rips complex, expm: small sets only (REFERENCE_MAX_N_OF)
        from bridgeeval.reference import topology

        return ("gudhi Rips" if name == "rtd" else "scipy expm"), getattr(topology, name)
    fn = getattr(dense, name, None)
    if fn is None:
        return None
    return "dense numpy/scipy", (lambda a, b: fn(a, b, k)) if MEASURES[name].takes_k else fn


def _scipy(name: str, a: np.ndarray, b: np.ndarray) -> float:
    import scipy.spatial
    import scipy.stats
    from scipy.spatial.distance import pdist

    if name == "procrustes":
        disparity = scipy.spatial.procrustes(a.astype(np.float64), b.astype(np.float64))[2]
        return math.sqrt(max(0.0, 2.0 - 2.0 * math.sqrt(max(0.0, 1.0 - disparity))))
    da, db = pdist(a, "cosine"), pdist(b, "cosine")
    test = scipy.stats.spearmanr if name == "rsa" else scipy.stats.pearsonr
    return float(test(da, db).statistic)


def _timed(fn: Callable[[], float]) -> tuple[float, float, int]:
    with PeakMemory() as mem:
        start = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - start
    return value, seconds, mem.extra


def _inputs(name: str, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if name in UNIT_ROWS:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return torch.from_numpy(x), torch.from_numpy(y)


def _row(name: str, n: int, d: int, value, seconds, extra) -> dict:
    return {"measure": name, "n": n, "d": d, "ours": value, "ours_s": seconds, "ours_peak_bytes": extra,
            "reference": None, "reference_value": None, "reference_s": None, "reference_peak_bytes": None}


def run_measure(name: str, x: np.ndarray, y: np.ndarray, k: int, with_reference: bool) -> list[dict]:
    """One measure at one size: ours (value, seconds, peak extra bytes) and, a row each, its
    references'."""
    xt, yt = _inputs(name, x, y)
    sigma = _common_sigma(xt) if "rbf" in name else None
    options = {"rbf_sigma": sigma} if sigma is not None else {}
    value, seconds, extra = _timed(lambda: measure(name, xt, yt, k=k, **options))
    base = _row(name, len(x), x.shape[1], value, seconds, extra)
    with_reference = with_reference and len(x) <= REFERENCE_MAX_N_OF.get(name, REFERENCE_MAX_N)
    refs = references(name, k, (sigma or 1.0, sigma or 1.0)) if with_reference else []
    rows = []
    for label, fn in refs:
        ref_value, ref_s, ref_extra = _timed(lambda: fn(xt, yt))
        rows.append({**base, "reference": label, "reference_value": ref_value, "reference_s": ref_s,
                     "reference_peak_bytes": ref_extra})
    return rows or [base]


def run_knn_family(names: list[str], x: np.ndarray, y: np.ndarray, k: int, rows: list[dict]) -> dict | None:
    """The k-NN measures of one pair as they are used (one search per set serves them all)
    against the sum of the references' times for the same measures (from ``rows``)."""
    from bridgeeval.metrics.measures import MEASURES, alignment_report
    from bridgeeval.metrics.representation import Representation

    family = [n for n in names if MEASURES[n].takes_k]
    if len(family) < 2:
        return None
    xt, yt = _inputs(family[0], x, y)

    def together() -> float:
        sets = {"input": Representation(xt), "target": Representation(yt)}
        return len(alignment_report(sets, family, k, {"input_target": ("input", "target")}))

    _, seconds, extra = _timed(together)
    row = _row(f"k-NN family, one search ({', '.join(family)})", len(x), x.shape[1], None, seconds, extra)
    timed = [r for r in rows if r["measure"] in family and r["reference"] == "platonic-rep"]
    if len(timed) == len(family):
        row.update(reference="platonic-rep, each alone", reference_s=sum(r["reference_s"] for r in timed),
                   reference_peak_bytes=max(r["reference_peak_bytes"] for r in timed))
    return row


def _common_sigma(x: torch.Tensor) -> float:
    from bridgeeval.metrics.kernel_measures import rms_distance
    from bridgeeval.metrics.representation import Representation

    return rms_distance(Representation(x))


def measure_names(text: str | None) -> list[str]:
    from bridgeeval.metrics.measures import check_measures

    names = list(MEASURES) if not text or text == "all" else [n for n in text.split(",") if n]
    names = list(check_measures(names))
    return [n for n in names if n != "mutual_knn"] if not text or text == "all" else names  # the same as mnno


def table_head() -> list[str]:
    columns = ["measure", "N x d", "ours (s)", "reference", "reference (s)", "reference/ours", "ours peak extra (GiB)",
               "reference peak extra (GiB)", "ours", "reference value"]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def table_row(row: dict) -> str:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    speedup = row["reference_s"] / row["ours_s"] if row["reference_s"] else None
    gib = 1 << 30
    cells = [row["measure"], f"{row['n']:,} x {row['d']:,}", num(row["ours_s"], ".2f"), row["reference"] or "-",
             num(row["reference_s"], ".2f"), "-" if speedup is None else f"{speedup:.1f}x",
             num(row["ours_peak_bytes"] / gib, ".2f"),
             num(None if row["reference_peak_bytes"] is None else row["reference_peak_bytes"] / gib, ".2f"),
             num(row["ours"], ".6f"), num(row["reference_value"], ".6f")]
    return "| " + " | ".join(cells) + " |"


def run_null(name: str, x: np.ndarray, y: np.ndarray, k: int, permutations: int) -> dict:
    """One measure from fresh sets, then its permutation null of ``permutations`` shuffles on the
    same sets (``metrics.null``: each set's own work reused): the two times and their ratio."""
    from bridgeeval.metrics.null import permutation_nulls
    from bridgeeval.metrics.representation import Representation

    xt, yt = _inputs(name, x, y)
    sets = {"input": Representation(xt), "target": Representation(yt)}
    value, measure_s, _ = _timed(lambda: measure(name, sets["input"], sets["target"], k=k))
    nulls, null_s, extra = _timed(lambda: permutation_nulls(sets, [name], k, permutations=permutations,
                                                            observed={f"{name}_input_target": value}))
    null = nulls[f"{name}_input_target"]
    return {"measure": name, "n": len(x), "d": x.shape[1], "value": value, "measure_s": measure_s,
            "permutations": permutations, "null_s": null_s, "per_shuffle_s": null_s / permutations,
            "null_over_measure": null_s / measure_s, "null_peak_bytes": extra,
            "p_value": None if null is None else null.p_value}


def null_table_head() -> list[str]:
    columns = ["measure", "N x d", "one measure (s)", "shuffles", "null (s)", "per shuffle (s)",
               "null / measure", "null peak extra (GiB)"]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def null_table_row(row: dict) -> str:
    cells = [row["measure"], f"{row['n']:,} x {row['d']:,}", f"{row['measure_s']:.3g}", str(row["permutations"]),
             f"{row['null_s']:.3g}", f"{row['per_shuffle_s']:.3g}", f"{row['null_over_measure']:.3g}",
             f"{row['null_peak_bytes'] / 2**30:.2f}"]
    return "| " + " | ".join(cells) + " |"
