import numpy as np
import pytest
import scipy.stats
import torch
from conftest import brute_knn

from bridgeeval.data.formats import read_matrix
from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import (
    MeanNearestNeighborOverlap,
    cross_modal_report,
    mnno,
    mnno_sampled,
    nn_overlap,
)


def brute_mnno(a, b, k, metric="cosine", include_self=False):
    na, nb = brute_knn(a, k, metric, include_self), brute_knn(b, k, metric, include_self)
    return np.mean([len(set(p) & set(q)) for p, q in zip(na, nb)]) / k


def test_paper_example_overlap_is_two():
    assert nn_overlap(torch.tensor([[3, 5, 6]]), torch.tensor([[2, 3, 6]])).tolist() == [2]


def test_mnno_equals_brute_force_and_bounds():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 30))
    b = a @ rng.normal(size=(30, 12)) + 0.5 * rng.normal(size=(200, 12))  # different dimension
    for metric in ("cosine", "euclidean"):
        for include_self in (False, True):
            got = mnno(a, b, k=10, metric=metric, include_self=include_self)
            assert got == pytest.approx(brute_mnno(a, b, 10, metric, include_self), abs=1e-12)
    assert mnno(a, a, k=5) == 1.0
    assert 0.0 <= mnno(a, rng.normal(size=(200, 4)), k=5) < 0.2


def test_counting_self_inflates_mnno(iapr_paths):
    text, image = (read_matrix(p).values for p in iapr_paths)
    keep = (np.abs(text).sum(1) > 0) & (np.abs(image).sum(1) > 0)
    without = mnno(text[keep], image[keep], k=10)
    with_self = mnno(text[keep], image[keep], k=10, include_self=True)
    # Self always overlaps: with k=10 it adds one shared neighbour in (almost) every row.
    assert with_self > without + 0.05


def test_report_against_independent_references():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 20))
    y = x[:, :8] * 2 + rng.normal(size=(150, 8))
    f = x[:, :8] * 1.8
    r = cross_modal_report(x, y, f, k=10)
    assert r["mnno_input_mapped"] == pytest.approx(brute_mnno(x, f, 10))
    assert r["mnno_target_mapped"] == pytest.approx(brute_mnno(y, f, 10))
    assert r["mnno_input_target"] == pytest.approx(brute_mnno(x, y, 10))
    assert r["mse"] == pytest.approx(np.mean((f - y) ** 2))
    assert r["r2"] == pytest.approx(r2_score(y, f))
    # recall@k: is y_i among the k targets nearest (cosine) to f(x_i)?
    yn, fn = y / np.linalg.norm(y, axis=1, keepdims=True), f / np.linalg.norm(f, axis=1, keepdims=True)
    sims = fn @ yn.T
    recall = np.mean([i in np.argsort(-sims[i], kind="stable")[:10] for i in range(150)])
    assert r["recall_at_k"] == pytest.approx(recall)
    counts = np.bincount(brute_knn(f, 10).ravel(), minlength=150)
    assert r["hubness"] == pytest.approx(scipy.stats.skew(counts))


def test_report_rejects_mismatched_sets():
    x = np.ones((10, 3)) + np.arange(30).reshape(10, 3)
    with pytest.raises(BridgeEvalError, match="differ in number of rows: input has 10, target has 9"):
        cross_modal_report(x, x[:9], x)
    with pytest.raises(BridgeEvalError, match="mapped has 2 dimensions but target has 3"):
        cross_modal_report(x, x, x[:, :2])


def test_metric_class_equals_functional_core_over_shuffled_batches():
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(97, 10)))
    y = torch.tensor(rng.normal(size=(97, 6)))
    f = x[:, :6] + 0.3 * torch.tensor(rng.normal(size=(97, 6)))
    metric = MeanNearestNeighborOverlap(k=5)
    perm = torch.randperm(97, generator=torch.Generator().manual_seed(0))
    for chunk in perm.split(20):  # batches arrive out of order, as from several ranks
        metric.update(x[chunk], y[chunk], f[chunk], index=chunk)
    got = metric.compute()
    want = cross_modal_report(x, y, f, k=5)
    assert got == pytest.approx(want)
    assert MeanNearestNeighborOverlap.higher_is_better and not MeanNearestNeighborOverlap.full_state_update


def test_sampled_estimate_is_exact_on_all_rows_and_close_on_few():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(400, 16))
    b = a + 0.8 * rng.normal(size=(400, 16))
    exact = mnno(a, b, k=10)
    full, _ = mnno_sampled(a, b, k=10, n_queries=400)
    assert full == pytest.approx(exact)
    est, se = mnno_sampled(a, b, k=10, n_queries=150, seed=1)
    assert se > 0 and abs(est - exact) < 4 * se


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_cached_target_side_gives_the_same_report_bit_for_bit(metric):
    """The hook computes Y's float64 copy, R^2's total sum of squares and retrieval's target scale
    once (TargetSide); every value of the report is the one computed from scratch."""
    from bridgeeval.metrics import cross_modal_report
    from bridgeeval.metrics.report import TargetSide

    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.normal(size=(150, 12)).astype(np.float32))
    y = torch.from_numpy(rng.normal(size=(150, 20)).astype(np.float32))
    y[7] = y[3]  # a retrieval tie
    mapped = y + 0.5 * torch.from_numpy(rng.normal(size=(150, 20)).astype(np.float32))
    plain = cross_modal_report(x, y, mapped, k=5, metric=metric)
    cached = cross_modal_report(x, y, mapped, k=5, metric=metric, targets=TargetSide(y, metric))
    assert cached == plain
    with pytest.raises(BridgeEvalError, match="cached targets"):
        cross_modal_report(x, y, mapped, k=5, metric=metric, targets=TargetSide(y[:100], metric))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_report_of_targets_and_map_far_outside_float64_squares(metric):
    """Y and f(X) of 1e120, 1e200, 1e-120 and 1e-200 (a careless float64 file): R^2 and recall@K
    are scale-free and must not change (recall went to 0.03 at 1e-200: retrieval's products
    underflowed into ties), the MSE scales by the factor squared (infinite where float64 cannot
    hold it), the neighbour values stay; with or without the cached target side."""
    from bridgeeval.metrics.report import TargetSide

    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(200, 12)))
    y = x @ torch.from_numpy(rng.normal(size=(12, 20))) + torch.from_numpy(rng.normal(size=(200, 20)))
    mapped = y + 0.5 * torch.from_numpy(rng.normal(size=(200, 20)))
    usual = cross_modal_report(x, y, mapped, k=5, metric=metric)
    assert usual["recall_at_k"] > 0.5
    for factor in (1e120, 1e200, 1e-120, 1e-200):
        ys, ms = y * factor, mapped * factor
        kept = (ys.clone(), ms.clone())
        for targets in (None, TargetSide(ys, metric)):
            report = cross_modal_report(x, ys, ms, k=5, metric=metric, targets=targets)
            assert torch.equal(ys, kept[0]) and torch.equal(ms, kept[1])
            for key in ("r2", "recall_at_k", "mnno_input_mapped", "mnno_target_mapped", "hubness"):
                assert report[key] == pytest.approx(usual[key], abs=1e-12), (key, factor)
            expected_mse = usual["mse"] * factor * factor
            if factor == 1e200:
                assert report["mse"] == float("inf")
            elif factor == 1e-200:
                assert report["mse"] == pytest.approx(0.0, abs=1e-300)  # 2.5e-401: below float64
            else:
                assert report["mse"] == pytest.approx(expected_mse, rel=1e-12)


def brute_retrieval_ranks(q, t, metric):
    """Each query's paired target's place among all targets, by float64 distances from
    differences, ties to the lower index."""
    q, t = np.asarray(q, dtype=np.float64), np.asarray(t, dtype=np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
    dist = ((q[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    order = np.arange(len(t))
    return np.array([int(np.flatnonzero(np.lexsort((order, row)) == i)[0]) for i, row in enumerate(dist)])


@pytest.fixture(params=["numba", "torch"])
def band_products(request, monkeypatch):
    """Retrieval's in-band pairs rescored by the numba kernel, or by torch's gather (numba missing)."""
    from bridgeeval.metrics import selection

    if request.param == "numba":
        assert selection.available()  # loaded: the kernel serves any amount of work
    else:
        monkeypatch.setattr(selection, "pair_dots", lambda *args: None)
    return request.param


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_retrieval_ranks_equal_brute_force_where_float32_decides_and_where_it_cannot(metric, dtype, monkeypatch,
                                                                                      band_products):
    """float32 products rank every pair outside the error band around the paired target; the pairs
    inside it (duplicate targets, a query equal to its target, one equal to another's) are placed
    by float64 products of those pairs, or of whole rows where they are too many. Sets at 1e-30 are
    outside float32's safe range: float64 throughout."""
    from bridgeeval.metrics import report

    in_band, whole = [], []
    band_ranks, ranks64 = report._ranks_in_band, report._ranks64
    monkeypatch.setattr(report, "_ranks_in_band", lambda q, t, m, s, rows, near, below: (
        in_band.append(int(near.sum())), band_ranks(q, t, m, s, rows, near, below))[1])
    monkeypatch.setattr(report, "_ranks64",
                        lambda q, t, m, s, rows: (whole.append(len(rows)), ranks64(q, t, m, s, rows))[1])
    rng = np.random.default_rng(5)
    t = rng.normal(size=(300, 40))
    t[[5, 9, 100]] = t[7]
    q = t + 0.3 * rng.normal(size=(300, 40))
    q[50], q[60], q[61] = t[50], t[7], t[9]
    q, t = q.astype(dtype), t.astype(dtype)
    expected = brute_retrieval_ranks(q, t, metric)
    ranks = lambda: report.retrieval_ranks(torch.from_numpy(q), torch.from_numpy(t), metric).numpy()  # noqa: E731
    np.testing.assert_array_equal(ranks(), expected)
    assert 0 < sum(in_band) < 60 and whole == []  # the tied queries' few pairs only
    monkeypatch.setattr(report, "_BAND_ELEMENTS", 40)  # one pair at a time: whole rows instead
    np.testing.assert_array_equal(ranks(), expected)
    assert 0 < sum(whole) < 30
    whole.clear()
    q, t = q * dtype(1e-30), t * dtype(1e-30)
    tiny = report.retrieval_ranks(torch.from_numpy(q), torch.from_numpy(t), metric).numpy()
    np.testing.assert_array_equal(tiny, brute_retrieval_ranks(q, t, metric))
    assert sum(whole) == len(q)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_retrieval_ranks_of_a_least_squares_map_on_the_built_in_set(metric, monkeypatch, band_products):
    """Real image features are close to one another: half of 128 held-out queries of a least-squares
    map have targets inside the float32 band (the hook met this every epoch). Their pairs are placed
    in float64 and the ranks equal the brute force from differences."""
    from bridgeeval.data import builtin
    from bridgeeval.metrics import report

    data = builtin.load_imagenet1k()
    x, y = data.text.astype(np.float64), data.image.astype(np.float64)
    design = np.c_[x, np.ones(len(x))]
    weights = np.linalg.lstsq(design[128:], y[128:], rcond=None)[0]
    mapped, targets = (design[:128] @ weights).astype(np.float32), y[:128].astype(np.float32)
    in_band = []
    band_ranks = report._ranks_in_band
    monkeypatch.setattr(report, "_ranks_in_band", lambda q, t, m, s, rows, near, below: (
        in_band.append(len(rows)), band_ranks(q, t, m, s, rows, near, below))[1])
    got = report.retrieval_ranks(torch.from_numpy(mapped), torch.from_numpy(targets), metric).numpy()
    np.testing.assert_array_equal(got, brute_retrieval_ranks(mapped, targets, metric))
    assert sum(in_band) >= 10
