"""RTD, IMD and the Geometry Score (issue #33) against the plain references of
bridgeeval.reference.topology, which use other engines: gudhi's full Rips complex for RTD (ours:
ripser), scipy's expm of scikit-learn's k-NN graph for IMD, a brute-force witness filtration and a
Z/2 reduction written in the reference for the Geometry Score (ours: gudhi's witness complex)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import topology_measures as topo
from bridgeeval.metrics.measures import MEASURES, measure
from bridgeeval.metrics.representation import Representation
from bridgeeval.reference import topology as ref


def _pair(n=60, da=8, db=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, da, generator=g, dtype=torch.float64)
    return a, a @ torch.randn(da, db, generator=g, dtype=torch.float64) + 0.5 * torch.randn(n, db, generator=g,
                                                                                           dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1])
def test_rtd_equals_gudhis_rips_barcodes_both_ways(seed):
    a, b = _pair(seed=seed)
    for x, y in ((a, b), (b, a)):
        ours = measure("rtd", x, y, rtd_batch=14, rtd_trials=3, rtd_seed=seed)
        # ripser computes in float32: its bars carry float32 rounding
        assert ours == pytest.approx(ref.rtd(x, y, trials=3, batch=14, seed=seed), rel=1e-6)
        assert ours > 0.05


def test_rtd_is_zero_for_one_shape_and_grows_with_noise():
    a, _ = _pair(n=80)
    g = torch.Generator().manual_seed(3)
    q = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64)).Q
    assert measure("rtd", a, 2.5 * a @ q + 1.0, rtd_batch=40, rtd_trials=2) == 0.0
    noisy = [measure("rtd", a, a + s * torch.randn(80, 8, generator=g, dtype=torch.float64), rtd_batch=40,
                     rtd_trials=4) for s in (0.05, 1.0)]
    assert 0 < noisy[0] < noisy[1]


def test_rtd_seed_picks_the_rows_and_a_full_batch_needs_no_seed():
    a, b = _pair(n=40)
    draws = {measure("rtd", a, b, rtd_batch=15, rtd_trials=1, rtd_seed=s) for s in range(4)}
    assert len(draws) == 4
    full = {measure("rtd", a, b, rtd_batch=40, rtd_trials=1, rtd_seed=s) for s in range(3)}
    assert len(full) == 1  # every row, only their order differs: the barcode does not


def test_imd_equals_expm_heat_traces_both_ways():
    for seed in (0, 1):
        a, b = _pair(seed=seed)
        for x, y in ((a, b), (b, a)):
            assert measure("imd", x, y) == pytest.approx(ref.imd(x, y), rel=1e-9)
        assert measure("imd", a, b, imd_k=3) == pytest.approx(ref.imd(a, b, k=3), rel=1e-9)


def test_heat_trace_is_exact_and_lanczos_estimates_it_within_its_stated_error():
    a, _ = _pair(n=300, da=5, seed=4)
    exact = topo.heat_trace(Representation(a))
    assert exact == pytest.approx(ref.heat_trace(a), rel=1e-9)
    estimates = np.stack([topo.heat_trace(Representation(a), probes=1000, exact_max=0, seed=s) for s in range(4)])
    error = np.abs(estimates - exact)
    # 1,000 probes here: at most about 1 % at any t (largest at t = 10, where few small eigenvalues
    # carry the trace), 0.05 % of the largest weighted trace, the scale IMD compares at
    assert (error / exact).max() < 0.05
    weight = np.exp(-2 * (topo.HEAT_TIMES + 1 / topo.HEAT_TIMES))
    assert 0 < (weight * error).max() / (weight * exact).max() < 0.003
    assert np.ptp(estimates, axis=0).max() > 0  # seeds draw other probes


def test_imd_by_lanczos_is_close_to_the_exact_value_and_seeded():
    a, b = _pair(n=300, seed=5)
    exact = measure("imd", a, b)
    slq = [measure("imd", a, b, imd_exact_max=0, imd_probes=2000, imd_seed=s) for s in (0, 0, 1)]
    assert slq[0] == slq[1] != slq[2]
    assert slq[0] == pytest.approx(exact, rel=0.05)


def test_relative_living_times_by_hand_and_against_the_segment_loop():
    # [0, 4]: one hole on [0, 1) and [2, 4), two on [1, 2)
    assert topo.relative_living_times([[0.0, 2.0], [1.0, np.inf]], 4.0, 3).tolist() == [0.0, 0.75, 0.25]
    assert topo.relative_living_times([], 1.0, 4).tolist() == [1.0, 0.0, 0.0, 0.0]
    rng = np.random.default_rng(0)
    for _ in range(20):
        births = rng.uniform(0, 1, 12)
        deaths = np.where(rng.uniform(size=12) < 0.2, np.inf, births + rng.exponential(0.3, 12))
        bars = np.column_stack([births, np.minimum(deaths, np.where(np.isinf(deaths), np.inf, 1.5))])
        ours = topo.relative_living_times(bars, 1.5, 5)
        assert ours == pytest.approx(ref.relative_living_times(bars.tolist(), 1.5, 5), abs=1e-12)


def test_witness_filtration_by_definition_equals_gudhis():
    gudhi = pytest.importorskip("gudhi")
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3))
    d = cdist(x, x[rng.integers(0, 40, 7)])
    order = np.argsort(d, axis=1, kind="stable")
    table = np.dstack([order, np.take_along_axis(d, order, axis=1)])
    alpha_max = 0.2
    tree = gudhi.WitnessComplex(table).create_simplex_tree(max_alpha_square=alpha_max, limit_dimension=2)
    theirs = {tuple(s): f for s, f in tree.get_filtration()}
    ours = ref.witness_filtration(d, alpha_max)
    assert ours.keys() == theirs.keys() and len(ours) > 20
    assert all(ours[s] == pytest.approx(theirs[s], abs=1e-12) for s in ours)


@pytest.mark.parametrize("gamma", [None, 0.05, 0.2])
def test_geometry_score_equals_the_brute_force_witness_complex(gamma):
    a, b = _pair(seed=2)
    options = dict(gs_landmarks=8, gs_repeats=6, gs_gamma=gamma, gs_seed=3)
    ours = measure("geometry_score", a, b, **options)
    assert ours == pytest.approx(ref.geometry_score(a, b, 8, gamma, 100, 6, seed=3), rel=1e-9, abs=1e-15)
    if gamma == 0.2:
        assert ours > 0  # holes appear in either set, not alike


def test_topological_measures_are_zero_on_one_shape_and_declare_it():
    a, _ = _pair()
    for name in ("rtd", "imd", "geometry_score"):
        m = MEASURES[name]
        assert not m.higher_is_better and m.best == 0.0
        value = measure(name, a, -3 * a + 2, rtd_batch=20, rtd_trials=2, gs_repeats=5, gs_gamma=0.2)
        assert value == pytest.approx(0.0, abs=1e-20)  # the living times' rounding, squared
    assert MEASURES["rtd"].paired and not MEASURES["imd"].paired and not MEASURES["geometry_score"].paired


def test_bad_options_and_too_few_items_are_one_line():
    a, b = _pair(n=5)
    with pytest.raises(BridgeEvalError, match="imd_k=5 needs more than 5 items"):
        measure("imd", a, b)
    from bridgeeval.metrics.measures import check_measure_options

    for key, bad in (("gs_gamma", -1.0), ("rtd_batch", 2), ("imd_probes", 0), ("gs_repeats", 1.5)):
        with pytest.raises(BridgeEvalError, match=f"^{key}="):
            check_measure_options({key: bad})


def test_a_missing_engine_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ripser", None)  # import ripser now raises ImportError
    a, b = _pair(n=20)
    with pytest.raises(BridgeEvalError, match=r"measure rtd needs ripser: pip install 'bridgeeval\[topology\]'"):
        measure("rtd", a, b)


def test_score_takes_their_options_and_prints_the_library_values(tmp_path):
    import json
    import subprocess

    a, b = _pair(n=50)
    np.save(tmp_path / "a.npy", a.numpy())
    np.save(tmp_path / "b.npy", b.numpy())
    base = [sys.executable, "-m", "bridgeeval.cli", "score", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    options = {"rtd_batch": 30, "rtd_trials": 2, "gs_repeats": 5, "gs_gamma": 0.2}
    proc = subprocess.run(base + ["--measures", "rtd,imd,geometry_score", "--json"]
                          + [f"--option={k}={v}" for k, v in options.items()], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for name in ("rtd", "imd", "geometry_score"):
        assert out[name] == pytest.approx(measure(name, a, b, **options), rel=1e-12)
    bad = subprocess.run(base + ["--measures", "rtd", "--option", "rtd_trails=3"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "unknown measure option 'rtd_trails'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
