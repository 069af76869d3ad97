"""The alignment measures against independent references: platonic-rep's dense definitions
(bridgeeval.reference.platonic) on real features and random data, closed forms, scipy,
scikit-learn and the editdistance package."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import scipy.linalg
import scipy.spatial
import scipy.stats
import torch
import torch.nn.functional as F
from scipy.spatial.distance import pdist

from bridgeeval.data.formats import read_matrix
from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import kernel_measures, knn_measures, linalg, mnno, rsa_measures as rsa_module
from bridgeeval.metrics.measures import MEASURES, MappedAlignment, alignment_report, check_measure_options, measure
from bridgeeval.metrics.representation import Representation
from bridgeeval.metrics.subspace_measures import procrustes, svcca
from bridgeeval.reference import platonic
from conftest import brute_knn, shared_file

TOL = 1e-5


def _random_pair(n=300, da=20, db=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, da, generator=g, dtype=torch.float64)
    b = a @ torch.randn(da, db, generator=g, dtype=torch.float64) + 2 * torch.randn(n, db, generator=g, dtype=torch.float64)
    return a, b


def _iapr(n=600):
    text = read_matrix(shared_file("iaprtc", "TS_lang_biGRU.csv"), id_column=True).values[:n]
    image = read_matrix(shared_file("iaprtc", "TS_vis_vgg128.csv"), id_column=True).values[:n]
    return torch.from_numpy(np.asarray(text, dtype=np.float64)), torch.from_numpy(np.asarray(image, dtype=np.float64))


def _wiki(n=600):
    data = scipy.io.loadmat(shared_file("wiki", "wiki.mat"))["data"][0, 0]
    image, text = np.asarray(data["X1"], dtype=np.float64).T[:n], np.asarray(data["X2"], dtype=np.float64).T[:n]
    return torch.from_numpy(text), torch.from_numpy(image)


def _pairs():
    return {"random": _random_pair, "iaprtc": _iapr, "wiki": _wiki}


def _distinct_items(a: torch.Tensor, b: torch.Tensor):
    """Items whose vectors occur once in both sets (IAPR TC-12 and Wiki repeat some items exactly,
    and repeats tie, where the reference's argsort order would decide)."""
    keep = np.ones(len(a), dtype=bool)
    for t in (a, b):
        _, first, counts = np.unique(t.numpy(), axis=0, return_index=True, return_counts=True)
        once = np.zeros(len(a), dtype=bool)
        once[first[counts == 1]] = True
        keep &= once
    return a[keep], b[keep]


def _tie_free(a: torch.Tensor, k: int) -> bool:
    """No two of a row's first k + 1 inner products tie (where argsort's order would decide)."""
    sims = (a @ a.T).fill_diagonal_(-1e8)
    top = torch.sort(sims, dim=1, descending=True).values[:, : k + 1]
    return bool(((top[:, :-1] - top[:, 1:]) > 1e-12).all())


@pytest.mark.parametrize("source", ["random", "iaprtc", "wiki"])
def test_knn_measures_equal_the_dense_reference(source):
    # Unit rows: platonic-rep ranks by inner product, which is cosine there (its scripts normalise).
    a, b = (F.normalize(t, dim=1) for t in _distinct_items(*_pairs()[source]()))
    k = 10
    assert len(a) >= 300
    assert _tie_free(a, k) and _tie_free(b, k)
    assert knn_measures.mutual_knn(a, b, k) == pytest.approx(platonic.mutual_knn(a, b, k), abs=TOL)
    assert knn_measures.cycle_knn(a, b, k) == pytest.approx(platonic.cycle_knn(a, b, k), abs=TOL)
    # platonic-rep's lcs_knn is the mean length; ours divides it by k.
    assert knn_measures.lcs_knn(a, b, k) * k == pytest.approx(platonic.lcs_knn(a, b, k), abs=TOL)
    assert knn_measures.edit_distance_knn(a, b, k) == pytest.approx(platonic.edit_distance_knn(a, b, k), abs=TOL)
    assert kernel_measures.cknna(a, b, k) == pytest.approx(platonic.cknna(a, b, k, eps=0.0), abs=TOL)


@pytest.mark.parametrize("source", ["random", "iaprtc", "wiki"])
def test_kernel_and_subspace_measures_equal_the_dense_reference(source):
    a, b = _pairs()[source]()
    for unbiased in (False, True):
        assert kernel_measures.cka(a, b, unbiased=unbiased) == pytest.approx(
            platonic.cka(a, b, unbiased=unbiased, eps=0.0), abs=TOL)
        sigma = kernel_measures.rms_distance(Representation(a))  # one width for both, as platonic-rep takes
        assert kernel_measures.cka(a, b, kernel="rbf", unbiased=unbiased, rbf_sigma=sigma) == pytest.approx(
            platonic.cka(a, b, kernel="rbf", rbf_sigma=sigma, unbiased=unbiased, eps=0.0), abs=TOL)
    assert svcca(a, b, cca_dim=10) == pytest.approx(platonic.svcca(a, b, cca_dim=10), abs=TOL)


@pytest.mark.parametrize("source", ["random", "iaprtc", "wiki"])
def test_svcca_through_lapack_equals_the_dense_reference(source, monkeypatch):
    """The LAPACK route (dsyrk's one triangle, dsyevx's top eigenpairs only, the tall set's
    standardisation folded into the Gram matrix) that large sets take, forced here on small ones."""
    monkeypatch.setattr(linalg, "_SCIPY_MIN_WORK", 0.0)
    a, b = _pairs()[source]()
    assert svcca(a, b, cca_dim=10) == pytest.approx(platonic.svcca(a, b, cca_dim=10), abs=TOL)
    wide = min(a.shape[1], b.shape[1]) - 1  # fewer rows than dimensions: the N x N Gram matrix
    assert svcca(a[:wide], b[:wide], cca_dim=10) == pytest.approx(platonic.svcca(a[:wide], b[:wide], cca_dim=10), abs=TOL)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_every_measure_scores_1e200_and_1e_minus_200_times_x_as_x_and_leaves_it_unmodified(metric):
    """Every measure invariant to scaling a set; in float64, squares (and CKA's fourth powers) of
    1e200 * X overflow and those of 1e-200 * X underflow unless the working copies are scaled back
    into range (exactly, by a power of two). SVCCA's 1e-8 is not scale-free: at 1e-200 it dwarfs the
    stds, so that value is the unstandardised one (tested on its own below). The inputs are read,
    never written (x[rows].double() is x itself where x is float64)."""
    a, b = _random_pair(n=200)
    names = [n for n, m in MEASURES.items() if n != "svcca" and "isotropic_scaling" in m.invariances]
    small = {"rtd_trials": 2, "rtd_batch": 60, "gs_repeats": 10}  # the topological ones at a test's cost
    usual = {n: measure(n, a, b, k=5, metric=metric, **small) for n in names}
    for factor in (1e200, 1e-200):
        big = a * factor
        kept = big.clone()
        scaled = {n: measure(n, big, b, k=5, metric=metric, **small) for n in names}
        assert torch.equal(big, kept)
        for n in names:
            assert scaled[n] == pytest.approx(usual[n], abs=1e-9), (n, factor)
    sigma = 30.0  # of the order of the sets' own spread (6 and 40 here): both estimators defined
    assert kernel_measures.cka(a * 1e200, b, kernel="rbf", rbf_sigma=sigma * 1e200) != kernel_measures.cka(
        a * 1e200, b, kernel="rbf", rbf_sigma=sigma)  # a given width is in x's units
    for unbiased in (False, True):
        given = kernel_measures.cka(a, b, kernel="rbf", rbf_sigma=sigma, unbiased=unbiased)
        for factor in (1e200, 1e-200):
            assert kernel_measures.cka(a * factor, b * factor, kernel="rbf", rbf_sigma=sigma * factor,
                                       unbiased=unbiased) == pytest.approx(given, abs=1e-9)


@pytest.mark.parametrize("lapack", [False, True])
def test_svcca_of_a_tall_set_at_extreme_scales(lapack, monkeypatch):
    """The Gram matrix of a tall set is formed before standardising: 1e160 * X must not overflow it,
    and at 1e-170 (std far below the 1e-8 that platonic-rep adds) the value is that of the
    unstandardised X, as the formula gives, not an underflow's NaN."""
    if lapack:
        monkeypatch.setattr(linalg, "_SCIPY_MIN_WORK", 0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 40, generator=g, dtype=torch.float64)
    y = torch.randn(300, 40, generator=g, dtype=torch.float64)
    usual = svcca(x, y, 10)
    assert svcca(x * 1e160, y, 10) == pytest.approx(usual, abs=1e-9)
    assert svcca(x * 1e300, y, 10) == pytest.approx(usual, abs=1e-9)

    def top(a):
        return torch.linalg.svd(a, full_matrices=False).U[:, :10]

    for rows in (300, 30):  # tall (the d x d Gram matrix), then wide (N x N)
        a, b = x[:rows], y[:rows]
        yc = b - b.mean(0)
        raw = float(torch.linalg.svdvals(top(a - a.mean(0)).T @ top(yc / (yc.std(0) + 1e-8))).mean())
        assert abs(raw - svcca(a, b, 10)) > 1e-4  # the two are told apart
        assert svcca(a * 1e-170, b, 10) == pytest.approx(raw, abs=1e-9)


def test_lapack_gram_and_top_eigenpairs_equal_torchs_full_ones():
    """Above the size where they are used: one triangle of dsyrk equals torch's product, and
    dsyevx's top eigenpairs equal those of torch's full eigendecomposition (as a subspace)."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(1600, 1500, generator=g, dtype=torch.float64)
    c[:, :5] *= 10.0  # five leading directions, well separated from the rest
    assert linalg._use_scipy(c, 1500.0**2 * 1600 / 2) and linalg._use_scipy(c, 1500.0**3 / 3)
    full = c.T @ c
    lower = linalg.gram(c, rows=False)
    assert torch.allclose(lower.tril(), full.tril(), rtol=1e-12, atol=1e-9)
    values, vectors = linalg.top_eigh(lower, 8)
    all_values, all_vectors = torch.linalg.eigh(full)
    assert torch.allclose(values, all_values[-8:], rtol=1e-12)
    assert float(torch.linalg.svdvals(vectors[:, -5:].T @ all_vectors[:, -5:]).min()) == pytest.approx(1.0, abs=1e-12)
    rows = linalg.gram(c[:40], rows=True)
    assert torch.allclose(rows.tril(), (c[:40] @ c[:40].T).tril(), rtol=1e-12, atol=1e-9)


def test_platonic_reps_epsilon_is_the_only_difference_in_cka():
    """With its 1e-6 in the denominator the dense form differs by exactly that term's effect."""
    a, b = _random_pair()
    hsic = platonic.hsic_unbiased
    ka, kb = a @ a.T, b @ b.T
    exact = float(hsic(ka, kb) / torch.sqrt(hsic(ka, ka) * hsic(kb, kb)))
    assert kernel_measures.cka(a, b, unbiased=True) == pytest.approx(exact, rel=1e-12)
    with_eps = platonic.cka(a, b, unbiased=True)
    assert with_eps == pytest.approx(float(hsic(ka, kb) / (torch.sqrt(hsic(ka, ka) * hsic(kb, kb)) + 1e-6)), rel=1e-12)


def test_linear_cka_equals_the_feature_space_closed_form():
    """||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) after centring, in numpy, and invariances."""
    a, b = (t.numpy() for t in _iapr(400))
    ac, bc = a - a.mean(0), b - b.mean(0)
    closed = np.linalg.norm(bc.T @ ac) ** 2 / (np.linalg.norm(ac.T @ ac) * np.linalg.norm(bc.T @ bc))
    assert kernel_measures.cka(a, b) == pytest.approx(closed, abs=1e-10)
    q = scipy.stats.ortho_group.rvs(b.shape[1], random_state=0)
    assert kernel_measures.cka(a, 7.0 * b @ q + 3.0) == pytest.approx(closed, abs=1e-10)
    # Wider than tall (N < d): the Gram-matrix path.
    wide_a, wide_b = a[:50], b[:50]
    wac, wbc = wide_a - wide_a.mean(0), wide_b - wide_b.mean(0)
    wide = np.linalg.norm(wbc.T @ wac) ** 2 / (np.linalg.norm(wac.T @ wac) * np.linalg.norm(wbc.T @ wbc))
    assert kernel_measures.cka(wide_a, wide_b) == pytest.approx(wide, abs=1e-10)


def test_rbf_cka_blocks_give_the_whole_matrix_value(monkeypatch):
    a, b = _random_pair(n=130)
    whole = [kernel_measures.cka(a, b, kernel="rbf", unbiased=u) for u in (False, True)]
    monkeypatch.setattr(kernel_measures, "_BLOCK", 32)  # 5 x 5 blocks, a ragged last one
    monkeypatch.setattr(kernel_measures, "_LEAF", 8)  # diagonal blocks halved twice
    assert [kernel_measures.cka(a, b, kernel="rbf", unbiased=u) for u in (False, True)] == pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize(("n", "block", "leaf"), [(1, 4, 2), (9, 4, 2), (130, 32, 8), (150, 40, 7), (64, 64, None)])
def test_symmetric_tiles_visit_every_pair_once(n, block, leaf):
    """Counted on the whole pair matrix: an off-diagonal tile's pairs and their mirrors once each,
    a diagonal tile's square once, so every (i, j) exactly once."""
    from bridgeeval.metrics.tiles import symmetric_tiles

    seen = np.zeros((n, n), dtype=int)
    for i0, i1, j0, j1, diagonal in symmetric_tiles(n, block, leaf):
        assert (i0 == j0 and i1 == j1) if diagonal else i1 <= j0  # off-diagonal tiles hold pairs i < j
        seen[i0:i1, j0:j1] += 1
        if not diagonal:
            seen[j0:j1, i0:i1] += 1
    assert (seen == 1).all()


def test_edit_distance_and_lcs_against_independent_implementations():
    import editdistance  # an independent C implementation (the test extra installs it)
    rng = np.random.default_rng(0)
    lists_a = torch.as_tensor(np.stack([rng.permutation(30)[:10] for _ in range(400)]))
    lists_b = torch.as_tensor(np.stack([rng.permutation(30)[:10] for _ in range(400)]))
    lists_b[:100] = lists_a[:100]  # some identical, some shifted
    lists_b[100:200] = torch.roll(lists_a[100:200], 1, dims=1)
    ours = knn_measures.edit_distances(lists_a, lists_b).tolist()
    assert ours == [editdistance.eval(x, y) for x, y in zip(lists_a.tolist(), lists_b.tolist())]
    assert knn_measures.lcs_lengths(lists_a, lists_b).tolist() == [
        platonic._lcs(x, y) for x, y in zip(lists_a.tolist(), lists_b.tolist())]
    assert set(knn_measures.lcs_lengths(lists_a[:100], lists_b[:100]).tolist()) == {10}
    assert set(knn_measures.lcs_lengths(lists_a[100:200], lists_b[100:200]).tolist()) == {9}


def test_mutual_knn_is_mnno_under_every_convention():
    """The same quantity: equal for both metrics, with and without self, on a set full of ties."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, size=(200, 2)).astype(float) + 0.0  # many duplicates: ties everywhere
    b = a + rng.integers(0, 2, size=(200, 2))
    for metric in ("euclidean", "cosine"):
        if metric == "cosine":
            a, b = a + 1.0, b + 1.0
        for include_self in (False, True):
            ours = knn_measures.mutual_knn(a, b, 5, metric, include_self)
            assert ours == mnno(a, b, 5, metric, include_self)
            overlap = [len(set(p) & set(q)) for p, q in zip(brute_knn(a, 5, metric, include_self),
                                                               brute_knn(b, 5, metric, include_self))]
            assert ours == pytest.approx(np.mean(overlap) / 5, abs=1e-15)


def test_cycle_knn_hand_worked():
    """A -> B -> A: item 0's B-neighbour is 1, whose A-neighbour is 0: found; item 1's is 2, whose
    A-neighbour is 1: found; item 2's is 0, whose A-neighbour is 1, not 2: not found."""
    idx_a = torch.tensor([[1], [0], [1]])
    idx_b = torch.tensor([[1], [2], [0]])
    assert knn_measures.cycle_knn_from_indices(idx_a, idx_b) == pytest.approx(2 / 3)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_rsa_equals_scipy(metric):
    a, b = _iapr(500)
    da, db = pdist(a.numpy(), metric), pdist(b.numpy(), metric)
    assert rsa_module.rsa(a, b, "spearman", metric) == pytest.approx(scipy.stats.spearmanr(da, db).statistic, abs=1e-9)
    assert rsa_module.rsa(a, b, "pearson", metric) == pytest.approx(scipy.stats.pearsonr(da, db).statistic, abs=1e-9)


def test_rsa_ranks_share_ties_like_scipy():
    values = torch.tensor([3.0, 1.0, 3.0, 2.0, 1.0, 3.0])
    assert rsa_module.midranks(values).tolist() == scipy.stats.rankdata(values.numpy()).tolist()
    a = np.repeat(np.arange(6.0), 3)[:, None] * np.ones((1, 2))  # duplicates: tied distances
    b = a + np.random.default_rng(0).normal(size=a.shape)
    exact = scipy.stats.spearmanr(pdist(a), pdist(b)).statistic
    assert rsa_module.rsa(a, b, metric="euclidean") == pytest.approx(exact, abs=1e-9)


def test_rsa_pearson_streams_over_blocks(monkeypatch):
    a, b = _random_pair(n=150)
    whole = rsa_module.rsa(a, b, "pearson")
    monkeypatch.setattr(rsa_module, "_BLOCK", 40)
    monkeypatch.setattr(rsa_module, "_LEAF", 7)  # diagonal blocks halved down to 5 rows, odd halves
    assert rsa_module.rsa(a, b, "pearson") == pytest.approx(whole, abs=1e-12)
    assert rsa_module.rsa(a, b, "spearman") == pytest.approx(
        scipy.stats.spearmanr(pdist(a.numpy(), "cosine"), pdist(b.numpy(), "cosine")).statistic, abs=1e-9)


def test_sampled_rsa_is_unbiased_and_its_error_is_honest():
    """Beyond max_pairs the estimate: each of 8 seeds within 4 standard errors of the exact
    value, and their mean within 4 standard errors of the mean (no bias at that precision)."""
    a, b = _wiki(1500)
    exact = rsa_module.rsa(a, b)
    draws = [rsa_module.rsa_sampled(a, b, n_samples=1 << 20, seed=s) for s in range(8)]
    for estimate, stderr in draws:
        assert abs(estimate - exact) < 4 * stderr, (estimate, stderr, exact)
        assert stderr < 0.01
    mean_se = math.sqrt(sum(se * se for _, se in draws)) / len(draws)
    assert abs(np.mean([e for e, _ in draws]) - exact) < 4 * mean_se
    assert rsa_module.rsa(a, b, max_pairs=1000, n_samples=1 << 20, seed=3) == draws[3][0]  # the path it takes


def test_procrustes_equals_scipy_and_padding():
    a, b = _iapr(300)  # 64 vs 128 dimensions: the narrower set padded with zeros
    def standard(x):
        x = x - x.mean(0)
        return x / np.linalg.norm(x)

    sa = np.hstack([standard(a.numpy()), np.zeros((300, 64))])
    sb = standard(b.numpy())
    rotation, _ = scipy.linalg.orthogonal_procrustes(sb, sa)
    assert procrustes(a, b) == pytest.approx(np.linalg.norm(sa - sb @ rotation), abs=1e-10)
    same = b[:, :64]
    disparity = scipy.spatial.procrustes(a.numpy(), same.numpy())[2]
    assert procrustes(a, same) == pytest.approx(math.sqrt(2 - 2 * math.sqrt(1 - disparity)), abs=1e-9)


def test_svcca_is_the_mean_canonical_correlation():
    """Against scikit-learn's CCA on the exact top singular vectors, and a subspace identity."""
    a, b = _wiki(500)
    assert svcca(a, b, 5) == pytest.approx(platonic.svcca(a, b, 5), abs=TOL)
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(a.shape[1], a.shape[1], generator=g, dtype=torch.float64)
    with pytest.raises(BridgeEvalError, match="cca_dim=200"):
        svcca(a, b, 200)
    assert 0.0 <= svcca(a, a @ mix, 10) <= 1.0


def test_registry_every_measure_runs_and_k_matters_only_where_it_is_taken():
    a, b = _random_pair(n=120)
    for name, m in MEASURES.items():
        v5, v9 = measure(name, a, b, k=5), measure(name, a, b, k=9)
        assert math.isfinite(v5), name
        if not m.takes_k:
            assert v5 == v9, name
    assert measure("procrustes", a, a) < 1e-7 and not MEASURES["procrustes"].higher_is_better
    for name in ("mnno", "cka", "unbiased_cka", "cka_rbf", "cknna", "svcca", "rsa", "rsa_pearson", "cycle_knn",
                 "lcs_knn", "edit_distance_knn"):
        assert measure(name, a, a, k=5) == pytest.approx(1.0, abs=1e-9), name
    with pytest.raises(BridgeEvalError, match="unknown measure 'ckka'"):
        measure("ckka", a, b)
    with pytest.raises(BridgeEvalError, match="rbf_sigma=-1"):
        check_measure_options({"rbf_sigma": -1})
    with pytest.raises(BridgeEvalError, match="unknown measure option 'sigma'"):
        check_measure_options({"sigma": 1.0})


def test_one_search_serves_every_knn_measure(monkeypatch):
    """alignment_report searches each set once however many k-NN measures it computes."""
    from bridgeeval.metrics import representation

    calls = []
    real = representation.knn_indices
    monkeypatch.setattr(representation, "knn_indices", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    a, b = _random_pair(n=100)
    sets = {"input": Representation(a), "target": Representation(b)}
    names = ["mnno", "mutual_knn", "cycle_knn", "lcs_knn", "edit_distance_knn", "cknna"]
    out = alignment_report(sets, names, 5)
    assert len(calls) == 2 and sorted(out) == sorted(f"{n}_input_target" for n in names)
    assert out["mnno_input_target"] == mnno(a, b, 5)


def test_biased_and_unbiased_cka_share_their_pass(monkeypatch):
    """The biased and unbiased estimators of a pair come from the same sums: one RBF pass and one
    cross-product per pair, the values those of separate calls; a partner set is not kept alive."""
    import gc
    import weakref

    calls = []
    real = kernel_measures._rbf_sums
    monkeypatch.setattr(kernel_measures, "_rbf_sums", lambda *a: calls.append(1) or real(*a))
    a, b = _random_pair(n=90)
    names = ["cka", "unbiased_cka", "cka_rbf", "unbiased_cka_rbf"]
    out = alignment_report({"input": Representation(a), "target": Representation(b)}, names, 5)
    assert len(calls) == 1
    for name, (kernel, unbiased) in zip(names, [("linear", False), ("linear", True), ("rbf", False), ("rbf", True)]):
        assert out[f"{name}_input_target"] == pytest.approx(kernel_measures.cka(a, b, kernel, unbiased), abs=1e-12)
    kept, partner = Representation(a), Representation(b)
    kernel_measures.cka(kept, partner)
    gone = weakref.ref(partner)
    del partner
    gc.collect()
    assert gone() is None


def test_mapped_alignment_keeps_x_and_y_across_calls():
    a, b = _random_pair(n=100)
    align = MappedAlignment(["mnno", "cka", "cknna", "rsa"], k=5, metric="cosine", include_self=False)
    mapped = [a @ torch.randn(20, 30, dtype=torch.float64) for _ in range(2)]
    first = align(a, b, mapped[0])
    input_rep = align._sets["input"]
    second = align(a, b, mapped[1])
    assert align._sets["input"] is input_rep  # X's neighbours and self-terms reused
    assert second["cka_input_target"] == first["cka_input_target"] == pytest.approx(kernel_measures.cka(a, b))
    assert second["cka_input_mapped"] == pytest.approx(kernel_measures.cka(a, mapped[1]))
    assert second["cknna_target_mapped"] == pytest.approx(kernel_measures.cknna(b, mapped[1], 5))
    assert "mnno_input_mapped" not in second  # the cross-modal report's own keys
    align(a + 1.0, b, mapped[1])
    assert align._sets["input"] is not input_rep  # another X: nothing stale


def test_bad_input_is_one_line():
    with pytest.raises(BridgeEvalError, match="a has 10 rows, b has 9"):
        measure("cka", np.ones((10, 2)), np.ones((9, 2)))
    x = np.random.default_rng(0).normal(size=(10, 3))
    x[4, 1] = np.nan
    with pytest.raises(BridgeEvalError, match="row 4 has NaN"):
        measure("rsa", x, x)
    with pytest.raises(BridgeEvalError, match="cca_dim=5 needs more than 5 items and at least 5 dimensions"):
        svcca(np.ones((10, 3)), np.ones((10, 3)), 5)


def test_a_collapsed_map_is_undefined_not_an_error():
    """Every row of f(X) the same vector (a dead map): the measures that need spread say NaN
    (undefined) instead of raising, so the validation hook reports it rather than ending the job;
    so do the k-NN measures, whose lists would only be the ties' order (tests/test_undefined_measures.py)."""
    x = np.random.default_rng(0).normal(size=(40, 12))
    collapsed = np.ones((40, 12))
    for name, m in MEASURES.items():
        value = measure(name, x, collapsed, k=5, metric="euclidean")
        # a measure that reads no structure (a one-set statistic, an uncentred distance) has a value
        assert math.isnan(value) if m.reads else math.isfinite(value), name
    with pytest.raises(BridgeEvalError, match="unbiased HSIC needs at least 4"):
        kernel_measures.cka(x[:3], x[:3], unbiased=True)


def test_procrustes_wider_than_tall_equals_the_full_svd():
    """Fewer items than dimensions: the N x N QR factors give the full d x d SVD's value."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(40, 300, generator=g, dtype=torch.float64)
    b = a @ torch.randn(300, 200, generator=g, dtype=torch.float64) + torch.randn(40, 200, generator=g, dtype=torch.float64)
    ac, bc = a - a.mean(0), b - b.mean(0)
    full = torch.linalg.svdvals(ac.T @ bc).sum() / (ac.norm() * bc.norm())
    assert procrustes(a, b) == pytest.approx(math.sqrt(2 - 2 * float(full)), abs=1e-10)
    assert procrustes(a[:, :20], b) == pytest.approx(
        math.sqrt(2 - 2 * float(torch.linalg.svdvals(ac[:, :20].T @ bc).sum() / (ac[:, :20].norm() * bc.norm()))),
        abs=1e-10)
