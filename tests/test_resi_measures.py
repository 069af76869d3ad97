"""ReSi's, netrep's and rsatoolbox's measures (issue #33) against independent references: the
plain dense forms of bridgeeval.reference.dense (written from the papers), dcor, rsatoolbox,
brute force over column permutations; and every registered measure's declared invariances,
symmetry and metric property checked on data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import shared_file

from bridgeeval.metrics import rsa_measures
from bridgeeval.metrics.measures import MEASURES, TRANSFORMS, measure
from bridgeeval.reference import dense

K = 5
OPTIONS = {"cca_dim": 3}


def _pair(n=60, da=8, db=6, seed=0, offset=0.3):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, da, generator=g, dtype=torch.float64)
    noise = 0.5 * torch.randn(n, db, generator=g, dtype=torch.float64)
    return a, a @ torch.randn(da, db, generator=g, dtype=torch.float64) + noise + offset


REFERENCES = {
    "jaccard_knn": lambda a, b: dense.jaccard_knn(a, b, K),
    "rank_similarity": lambda a, b: dense.rank_similarity(a, b, K),
    "second_order_cosine": lambda a, b: dense.second_order_cosine(a, b, K),
    "magnitude_difference": dense.magnitude_difference,
    "concentricity_difference": dense.concentricity_difference,
    "uniformity_difference": dense.uniformity_difference,
    "rsm_norm_difference": dense.rsm_norm_difference,
    "eigenspace_overlap": dense.eigenspace_overlap,
    "linear_regression": dense.linear_regression,
    "gulp": dense.gulp,
    "pwcca": dense.pwcca,
    "procrustes_angular": dense.procrustes_angular,
    "procrustes_size_shape": dense.procrustes_size_shape,
    "aligned_cosine": dense.aligned_cosine,
    "permutation_procrustes": dense.permutation_procrustes,
    "hard_correlation_match": dense.hard_correlation_match,
    "soft_correlation_match": dense.soft_correlation_match,
    "distance_correlation": dense.distance_correlation,
    "rsa_cosine": lambda a, b: dense.rsa_comparator(a, b, "cosine"),
    "rsa_rho_a": lambda a, b: dense.rsa_comparator(a, b, "rho-a"),
    "rsa_tau_a": lambda a, b: dense.rsa_comparator(a, b, "tau-a"),
    "rsa_cosine_cov": lambda a, b: dense.rsa_comparator(a, b, "cosine_cov"),
    "rsa_corr_cov": lambda a, b: dense.rsa_comparator(a, b, "corr_cov"),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_each_measure_equals_its_reference_both_ways(name):
    a, b = _pair()
    for x, y in ((a, b), (b, a)):
        ours, ref = measure(name, x, y, k=K), REFERENCES[name](x, y)
        assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9), (name, ours, ref)


def test_measures_equal_their_references_on_real_features():
    """IAPR TC-12's text and image features (different widths, real spectra)."""
    from bridgeeval.data.formats import read_matrix

    text = read_matrix(shared_file("iaprtc", "TS_lang_biGRU.csv"), id_column=True).values[:300]
    image = read_matrix(shared_file("iaprtc", "TS_vis_vgg128.csv"), id_column=True).values[:300]
    a, b = torch.from_numpy(np.asarray(text, dtype=np.float64)), torch.from_numpy(np.asarray(image, dtype=np.float64))
    for name, ref in REFERENCES.items():
        assert measure(name, a, b, k=K) == pytest.approx(ref(a, b), rel=1e-6, abs=1e-9), name


def test_subspace_measures_on_wide_sets():
    """More columns than rows: the bases come from the N x N side."""
    a, b = _pair(n=20, da=30, db=25, seed=3)
    for name in ("eigenspace_overlap", "linear_regression", "gulp", "procrustes_angular", "procrustes_size_shape",
                 "aligned_cosine", "permutation_procrustes", "hard_correlation_match", "soft_correlation_match"):
        assert measure(name, a, b) == pytest.approx(REFERENCES[name](a, b), rel=1e-6, abs=1e-9), name


def test_gulp_with_ridge_matches_the_hat_matrices():
    a, b = _pair(seed=4)
    for lam in (1e-3, 0.1, 2.0):
        assert measure("gulp", a, b, gulp_lambda=lam) == pytest.approx(dense.gulp(a, b, lam), rel=1e-6)


def test_matchings_are_the_best_of_all_column_permutations():
    """Brute force over the 5! matchings of five columns with five."""
    a, b = _pair(n=40, da=5, db=5, seed=5)
    an, bn = a.numpy(), b.numpy()
    corr = np.corrcoef(an.T, bn.T)[:5, 5:]
    best_corr = max(np.mean([corr[i, p[i]] for i in range(5)]) for p in itertools.permutations(range(5)))
    best_dist = min(np.linalg.norm(an - bn[:, list(p)]) for p in itertools.permutations(range(5)))
    assert measure("hard_correlation_match", a, b) == pytest.approx(best_corr, rel=1e-12)
    assert measure("permutation_procrustes", a, b) == pytest.approx(best_dist, rel=1e-12)


def test_hand_worked_rank_similarity_and_jaccard():
    """Lists [1, 2, 3] and [2, 4, 1]: shared 1 (ranks 1, 3) and 2 (ranks 2, 1).
    Jaccard 2/4; rank similarity (2/(3*4) + 2/(2*3)) / (1 + 1/2) = (1/6 + 1/3) / 1.5 = 1/3."""
    from bridgeeval.metrics.knn_measures import jaccard_rows, rank_similarity_rows

    la, lb = torch.tensor([[1, 2, 3]]), torch.tensor([[2, 4, 1]])
    assert jaccard_rows(la, lb).item() == pytest.approx(0.5)
    assert rank_similarity_rows(la, lb).item() == pytest.approx(1.0 / 3.0)
    assert rank_similarity_rows(la, la).item() == pytest.approx(1.0)
    assert rank_similarity_rows(la, torch.tensor([[7, 8, 9]])).item() == 0.0


def test_sampled_tau_a_estimates_the_exact_one():
    a, b = _pair(n=120, seed=6)
    exact = measure("rsa_tau_a", a, b)
    draws = [rsa_measures.rsa_sampled(a, b, n_samples=1 << 18, seed=s, kendall=True) for s in range(4)]
    estimate = np.mean([d[0] for d in draws])
    stderr = math.sqrt(sum(d[1] ** 2 for d in draws)) / len(draws)
    assert abs(estimate - exact) < 4 * stderr + 1e-3
    # beyond rsa_max_pairs the registry gives the estimate
    assert measure("rsa_tau_a", a, b, rsa_max_pairs=10) == pytest.approx(draws[0][0], rel=0.2)


# Declared properties --------------------------------------------------------------------------


def _transform(kind: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
    shift = 3.0 * torch.randn(d, generator=g, dtype=torch.float64)
    stretch = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
    linear = q @ torch.diag(torch.linspace(0.3, 3.0, d, dtype=torch.float64)) @ stretch
    return {
        "orthogonal": lambda: x @ q,
        "isotropic_scaling": lambda: 3.7 * x,
        "translation": lambda: x + shift,
        "permutation": lambda: x[:, torch.randperm(d, generator=g)],
        "invertible_linear": lambda: x @ linear,
        "affine": lambda: x @ linear + shift,
    }[kind]()


def _value(name, a, b):
    return measure(name, a, b, k=K, **OPTIONS)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_declared_invariances_hold_and_the_others_do_not(name):
    """Each transformation of either set: a declared invariance leaves the value unchanged (to
    1e-8); an undeclared one changes it for at least one of the two sets."""
    a, b = _pair(seed=7, offset=1.0)
    base = _value(name, a, b)
    for kind in TRANSFORMS:
        moved = [_value(name, _transform(kind, a, 1), b), _value(name, a, _transform(kind, b, 2))]
        changes = [abs(v - base) / max(1.0, abs(base)) for v in moved]
        if kind in MEASURES[name].invariances:
            assert max(changes) < MEASURES[name].tolerance, (name, kind, base, moved)
        else:
            assert max(changes) > 1e-6, (name, kind, "declared not invariant, but unchanged", base)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_a_set_and_its_invariant_transforms_score_best_and_never_beyond(name):
    """A set against itself, or a transform the measure declares itself invariant to, agrees fully:
    the value is ``best`` (to the measure's tolerance) and never past it, the end of its range
    (CKA of a scaled copy came out at 1 + 2^-52, GULP at -4e-15, on some CPUs)."""
    m = MEASURES[name]
    for seed in range(3):
        a = _pair(seed=20 + seed, offset=1.0)[0]
        for kind in ("identity", *sorted(m.invariances)):
            value = _value(name, a, a if kind == "identity" else _transform(kind, a, seed))
            beyond = value - m.best if m.higher_is_better else m.best - value
            assert -m.tolerance * max(1.0, abs(m.best)) <= -beyond and beyond <= 0.0, (name, kind, seed, value)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_declared_symmetry(name):
    a, b = _pair(seed=8)
    ab, ba = _value(name, a, b), _value(name, b, a)
    if MEASURES[name].symmetric:
        assert ab == pytest.approx(ba, rel=1e-9, abs=1e-12)
    else:
        assert abs(ab - ba) > 1e-6


@pytest.mark.parametrize("name", sorted(n for n, m in MEASURES.items() if m.is_metric))
def test_declared_metrics_satisfy_the_triangle_inequality(name):
    for seed in range(6):
        a, b = _pair(seed=seed, da=6, db=6)
        c = _pair(seed=seed + 50, da=6, db=6)[1]
        ab, bc, ac = _value(name, a, b), _value(name, b, c), _value(name, a, c)
        assert ac <= ab + bc + 1e-9 * max(1.0, ac)
        assert _value(name, a, a) == pytest.approx(0.0, abs=1e-6)


def test_every_measure_declares_only_known_transforms():
    for m in MEASURES.values():
        assert set(m.invariances) <= set(TRANSFORMS), m.name
        assert m.source, f"{m.name} names no source"


def test_one_set_statistics_get_no_null_and_paired_measures_do():
    from bridgeeval.metrics.null import permutation_nulls
    from bridgeeval.metrics.representation import Representation

    a, b = _pair(n=80, seed=9)
    sets = {"input": Representation(a), "target": Representation(b)}
    names = ["magnitude_difference", "uniformity_difference", "gulp", "jaccard_knn"]
    nulls = permutation_nulls(sets, names, K, {"input_target": ("input", "target")}, permutations=30)
    assert nulls["magnitude_difference_input_target"] is None and nulls["uniformity_difference_input_target"] is None
    # b is a linear map of a plus noise: the shuffles never come close
    assert nulls["gulp_input_target"].p_value == pytest.approx(1 / 31)
    assert nulls["jaccard_knn_input_target"].p_value == pytest.approx(1 / 31)


def test_bench_times_the_new_measures_against_their_references():
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bridgeeval.cli", "bench", "--measures",
                           "gulp,rsa_tau_a,jaccard_knn", "--sizes", "300x16", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in json.loads(proc.stdout)["measures"] if r.get("reference")]
    assert {r["reference"] for r in rows} == {"dense numpy/scipy", "rsatoolbox"}  # (dcor: its numba start is slow)
    for r in rows:
        assert r["ours"] == pytest.approx(r["reference_value"], rel=1e-6), r


def test_a_float32_set_of_low_rank_has_that_rank_not_its_rounding_noise():
    """f(X) of a net with a 6-unit bottleneck, stored in float32: rank 6 by numpy's rule on the
    float32 array (ReSi's matrix_rank call), so eigenspace overlap sees 6 directions, not 20."""
    from bridgeeval.metrics.representation import Representation
    from bridgeeval.metrics.subspace_measures import basis

    g = torch.Generator().manual_seed(10)
    x = torch.randn(200, 20, generator=g)
    low = torch.relu(x @ torch.randn(20, 6, generator=g)) @ torch.randn(6, 20, generator=g)
    assert np.linalg.matrix_rank(low.numpy()) == 6
    assert basis(Representation(low), centred=False)[0].shape[1] == 6
    value = measure("eigenspace_overlap", x, low)
    assert value == pytest.approx(dense.eigenspace_overlap(x.numpy(), low.numpy()), rel=1e-6)
    assert value <= 6 / 20  # 6 directions of overlap at most, over max(d) = 20
