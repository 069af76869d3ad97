import math
import time

import numpy as np
import pytest
import torch
from conftest import brute_knn

from bridgeeval.data.formats import read_matrix
from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import knn_indices, knn_indices_of_rows


ROUTES = ["one-block", "dense", "running"]


def use_route(route: str, monkeypatch) -> None:
    """Small sets (one block) take the one-block route; ``dense`` and ``running`` force the general
    route's float64 matrix or its blockwise float32 candidates instead."""
    from bridgeeval.metrics import neighbours

    if route != "one-block":
        monkeypatch.setattr(neighbours, "_ONE_BLOCK_MAX", 0)
        monkeypatch.setattr(neighbours, "_dense_route", lambda space: route == "dense")


def test_norms_are_correctly_rounded_roots():
    """The search's float64 norms are IEEE roots (math.sqrt's). torch's CPU sqrt is within 0.5001
    ulp: on an AVX-512 machine it gave sqrt(0.5) and 0.7% of random roots one ulp off."""
    from bridgeeval.metrics.neighbours import ieee_sqrt

    values = torch.cat([torch.tensor([0.5, 2.0, 8.0, 18.0, 1e-300, 0.0]), 10 * torch.rand(20000, dtype=torch.float64)])
    assert ieee_sqrt(values).tolist() == [math.sqrt(v) for v in values.tolist()]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("include_self", [False, True])
def test_rows_of_one_direction_rank_as_the_brute_force_does_on_every_route(route, include_self, monkeypatch):
    """[1, 1], [2, 2], [4, 4] normalise to the same bits, [3, 3] one bit away (IEEE float64): the
    routes agree with the brute force (the general route, on torch's roots, tied all four)."""
    use_route(route, monkeypatch)
    rng = np.random.default_rng(1)
    x = rng.integers(1, 4, size=(200, 2)).astype(float)
    x[:4] = [[2.0, 2.0], [3.0, 3.0], [1.0, 1.0], [4.0, 4.0]]
    got = knn_indices(x, 5, "cosine", include_self).numpy()
    np.testing.assert_array_equal(got, brute_knn(x, 5, "cosine", include_self))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_one_block_route_equals_brute_force_on_awkward_sets(metric, include_self, k, monkeypatch):
    """The one-block route (one gram, one compiled call per set) on sets that exercise every
    branch of its rule: identical and near-identical rows, a group of 40 copies (more than the
    candidates: those rows go on to the slow path), exact ties of integer points, float64 input,
    and sets so small that every point is a candidate."""
    from bridgeeval.metrics import neighbours, selection

    calls = []
    one_block = selection.one_block
    monkeypatch.setattr(selection, "one_block", lambda *a, **kw: calls.append(1) or one_block(*a, **kw))
    slow = []
    resolve = neighbours._resolve_rows
    monkeypatch.setattr(neighbours, "_resolve_rows", lambda s, r, p, *a: (slow.append(len(p)), resolve(s, r, p, *a)))
    rng = np.random.default_rng(k)
    mixed = rng.normal(size=(400, 24))
    mixed[[10, 50, 99]] = mixed[3]
    mixed[200:240] = mixed[7]
    mixed[300:310] = mixed[5] + 1e-9 * rng.normal(size=(10, 24))
    sets = {
        "mixed float64": mixed,
        "mixed float32": mixed.astype(np.float32),
        "integer points": rng.integers(1, 4, size=(300, 3)).astype(np.float32),
        "every point a candidate": rng.normal(size=(k + 2, 5)).astype(np.float32),
    }
    for name, x in sets.items():
        expected = brute_knn(x, k, metric, include_self)
        np.testing.assert_array_equal(knn_indices(x, k, metric, include_self).numpy(), expected, err_msg=name)
    assert len(calls) == len(sets)
    assert slow  # the 40 copies' rows took the slow path


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("include_self", [False, True])
def test_equals_float64_brute_force_with_duplicates(metric, include_self):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(257, 24)).astype(np.float32)
    x[[10, 50, 99]] = x[3]  # duplicate rows: ties broken by the lower index
    x[200] = x[100]
    expected = brute_knn(x, 10, metric, include_self)
    for block in (None, 5, 64, 300):
        got = knn_indices(x, 10, metric, include_self, block_size=block).numpy()
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 2, 10])
def test_a_duplicate_with_a_lower_index_precedes_self_at_every_k(metric, k):
    """With self counted, a duplicate of q at a lower index is at distance 0 too and comes first
    (ties by index). At k = 1 the float32 preselection used to keep self alone (forced in at +inf)
    and never rescored the duplicate: 148 of 1,400 rows were wrong on this set."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1400, 2)).astype(np.float32)
    x[rng.integers(0, 1400, 470)] = x[rng.integers(0, 1400, 470)]
    expected = brute_knn(x, k, metric, include_self=True)
    for block in (None, 256):  # one block and several
        np.testing.assert_array_equal(knn_indices(x, k, metric, True, block_size=block).numpy(), expected)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("include_self", [False, True])
def test_collapsed_map_with_large_duplicate_groups_equals_brute_force(metric, include_self, route, monkeypatch):
    """A diverged map's outputs: most rows in a few bitwise-identical groups, the rest close by.
    More pairs are near-identical than there are rows, so identical ones are set to 0 at once."""
    use_route(route, monkeypatch)
    rng = np.random.default_rng(2)
    base = rng.normal(size=(1, 64)).astype(np.float32) + 5.0
    x = np.repeat(base, 320, axis=0) + rng.normal(scale=1e-4, size=(320, 64)).astype(np.float32)
    groups = rng.integers(0, 4, size=320)
    heads = {g: int(np.flatnonzero(groups == g)[0]) for g in range(4)}
    for i, g in enumerate(groups[:250]):
        x[i] = x[heads[g]]  # 250 rows in 4 groups of copies; 70 distinct near-copies
    x[[5, 9]] = -0.0 * x[[5, 9]] + x[[5, 9]]  # same values, written again
    assert len(np.unique(x, axis=0)) < 80
    expected = brute_knn(x, 10, metric, include_self)
    np.testing.assert_array_equal(knn_indices(x, 10, metric, include_self).numpy(), expected)


def test_float64_input_and_wide_dims():
    x = np.random.default_rng(2).normal(size=(120, 700))
    before = x.copy()
    np.testing.assert_array_equal(knn_indices(x, 7).numpy(), brute_knn(x, 7))
    np.testing.assert_array_equal(x, before)  # float64 input is its own .double(): never written to


def test_exact_ties_on_integer_points_take_lower_index():
    x = np.random.default_rng(0).integers(0, 3, size=(200, 3)).astype(np.float32)
    got = knn_indices(x, 10, "euclidean").numpy()
    np.testing.assert_array_equal(got, brute_knn(x, 10, "euclidean"))


def test_hand_worked_line():
    pts = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
    # Point 1 is at distance 1 from 0 and 2 from 3: ties would go to the lower index.
    assert knn_indices(pts, 2, "euclidean").tolist() == [[1, 2], [0, 2], [3, 1], [2, 1]]
    assert knn_indices(pts, 2, "euclidean", include_self=True).tolist() == [[0, 1], [1, 0], [2, 3], [3, 2]]


def test_include_self_matches_scikit_learn_kneighbors():
    from sklearn.neighbors import NearestNeighbors

    x = np.random.default_rng(3).normal(size=(300, 16))
    for metric in ("cosine", "euclidean"):
        ref = NearestNeighbors(n_neighbors=10, metric=metric, algorithm="brute").fit(x).kneighbors(x)[1]
        np.testing.assert_array_equal(knn_indices(x, 10, metric, include_self=True).numpy(), ref)


def test_real_iapr_features_with_duplicate_rows(iapr_paths):
    for path in iapr_paths:
        x = read_matrix(path).values
        assert len(np.unique(x, axis=0)) < len(x)  # the released features repeat some rows
        nonzero = np.abs(x).sum(1) > 0
        x = x[nonzero]
        for metric in ("cosine", "euclidean"):
            np.testing.assert_array_equal(knn_indices(x, 10, metric).numpy(), brute_knn(x, 10, metric))


def test_rows_subset_equals_full_search():
    x = np.random.default_rng(4).normal(size=(150, 8))
    rows = torch.tensor([5, 0, 149, 77])
    full = knn_indices(x, 6)
    np.testing.assert_array_equal(knn_indices_of_rows(x, rows, 6, block_size=32).numpy(), full[rows].numpy())


@pytest.mark.parametrize(
    "x,k,message",
    [
        (np.ones((5, 2)), 5, "k=5 is too large for 5 items"),
        (np.array([[1.0, 0.0], [np.nan, 1.0], [1.0, 1.0]]), 1, "row 1 has NaN"),
        (np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), 1, "row 1 is a zero vector"),
        (np.ones(5), 1, "expected a 2-D matrix"),
    ],
)
def test_bad_input_is_named(x, k, message):
    with pytest.raises(BridgeEvalError, match=message):
        knn_indices(x, k)


@pytest.fixture
def matmul_settings():
    """The process's float32 GEMM settings (torch >= 2.9, per backend), put back after the test."""
    backends = (torch.backends.cuda.matmul, torch.backends.mkldnn.matmul)
    saved = [b.fp32_precision for b in backends]
    yield lambda: tuple(b.fp32_precision for b in backends)
    for b, value in zip(backends, saved, strict=True):
        b.fp32_precision = value


@pytest.mark.parametrize("setting", ["high", "medium", "per-backend"])
def test_products_run_in_ieee_float32_whatever_the_user_set(setting, matmul_settings, monkeypatch):
    """TF32 or bfloat16 GEMMs (a user's, or Lightning's advice on tensor-core GPUs) would widen
    the error bound and send rows down the slow path; the search runs its own in IEEE float32 and
    leaves the user's settings as they were, also after an error. Set per backend (torch's newer
    API), the process-wide getter raises, so the search must not read it."""
    from bridgeeval.metrics import gemm, neighbours

    seen = []

    def recording(a, b):
        seen.append(matmul_settings())
        return gemm.block_products(a, b)

    monkeypatch.setattr(neighbours, "block_products", recording)
    if setting == "per-backend":
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    else:
        torch.set_float32_matmul_precision(setting)
    users = matmul_settings()
    assert "ieee" not in users
    x = np.random.default_rng(7).normal(size=(700, 24))
    np.testing.assert_array_equal(knn_indices(x, 5, "cosine", block_size=256).numpy(), brute_knn(x, 5, "cosine"))
    assert seen and set(seen) == {("ieee", "ieee")}
    assert matmul_settings() == users
    with pytest.raises(BridgeEvalError, match="row 1 has NaN"):
        knn_indices(np.array([[1.0, 0.0], [np.nan, 1.0], [1.0, 1.0]]), 1)
    assert matmul_settings() == users


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("include_self", [False, True])
def test_many_rows_on_the_slow_path_keep_exact_lists(metric, include_self, monkeypatch):
    """Groups of 30 identical rows (more than the 20 candidates of k = 10) and an error bound
    widened 4,096 times send a quarter of the rows down the slow path, which takes them by chunks; a pair
    budget of 500 makes it halve its chunks down to single rows. float64 brute force agrees."""
    from bridgeeval.metrics import neighbours

    slow = []
    resolve = neighbours._resolve_rows
    monkeypatch.setattr(neighbours, "_resolve_rows", lambda s, r, p, *a: (slow.append(len(p)), resolve(s, r, p, *a)))
    bound = neighbours.dot_error_bound
    monkeypatch.setattr(neighbours, "dot_error_bound", lambda dim: bound(dim) * 4096)
    monkeypatch.setattr(neighbours, "_RESOLVE_PAIRS", 500)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(900, 16))
    for g in range(6):
        x[g * 30 : (g + 1) * 30] = x[800 + g]
    got = knn_indices(x, 10, metric, include_self, block_size=128).numpy()
    np.testing.assert_array_equal(got, brute_knn(x, 10, metric, include_self))
    assert sum(slow) > 200  # of 900 rows


def test_block_products_stay_full_float32_whichever_cpu_kernel_is_chosen():
    from bridgeeval.metrics import gemm

    rng = np.random.default_rng(5)
    a = torch.from_numpy(rng.standard_normal((1100, 700), dtype=np.float32))
    b = torch.from_numpy(rng.standard_normal((1000, 700), dtype=np.float32))
    exact = a.double() @ b.double().T
    bound = 2 * (700 + 6) * 2.0**-24 * float(a.norm(dim=1).max() * b.norm(dim=1).max())
    # Large enough to go through the CPU kernels: the trial calls (each kernel) and the chosen one.
    for _ in range(2 * gemm._TRIALS + 1):
        got = gemm.block_products(a, b)
        assert got.dtype == torch.float32 and got.shape == (1100, 1000)
        assert float((got.double() - exact).abs().max()) <= bound
    assert gemm._CHOICE.chosen in (gemm._matmul, gemm._onednn)
    try:
        onednn = gemm._onednn(a, b)
    except (RuntimeError, AttributeError):
        pytest.skip("this torch build has no oneDNN linear op")
    assert float((onednn.double() - exact).abs().max()) <= bound


def test_the_kernel_choice_keeps_the_faster_kernel_of_the_real_calls():
    from bridgeeval.metrics import gemm

    def slower(a, b):  # the same product after a 50 ms wait: slower whatever else loads the CPU
        time.sleep(0.05)
        return gemm._matmul(a, b)

    choice = gemm._KernelChoice()
    choice.candidates = [slower, gemm._matmul]
    a = torch.randn(600, 500)
    for call in range(2 * gemm._TRIALS):
        assert choice.chosen is None  # still timing both
        torch.testing.assert_close(choice.run(a, a), a @ a.T)
    assert choice.chosen is gemm._matmul


@pytest.mark.parametrize(("n", "route"), [(800, "one-block"), (800, "dense"), (800, "running"), (1500, "running")])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_planted_duplicate_groups_keep_the_tie_rule(n, route, metric, monkeypatch):
    """Groups of 17 and 33 bitwise-identical rows, each with near neighbours around it: identical
    candidates tie exactly, so the lower index always comes first (float64 brute force agrees)."""
    use_route(route, monkeypatch)
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 48))
    for size in (17, 33) * 6:
        src, dst = rng.integers(n), rng.choice(n, size=size + 20, replace=False)
        x[dst[:size]] = x[src]
        x[dst[size:]] = x[src] + 0.05 * rng.normal(size=(20, 48))
    for include_self in (False, True):
        got = knn_indices(x, 10, metric, include_self=include_self).numpy()
        np.testing.assert_array_equal(got, brute_knn(x, 10, metric, include_self=include_self))


def test_identical_rows_take_one_distance_whatever_the_gemm_rounds():
    """MKL's float64 GEMM on AMD EPYC rounds the products of bitwise-identical columns 1 ulp apart
    by their position, which put a higher index first among tied twins (6 tie-rule cases failed
    there). Identical candidates (equal ids) are given their first twin's distance, per row and for
    the all-pairs matrix, and distinct ones keep theirs."""
    from bridgeeval.metrics.neighbours import _identical_at_one_distance

    ulp = np.spacing(0.25)
    dist = torch.tensor([[0.25 + ulp, 0.5, 0.25, 0.25 - ulp], [0.7, 0.1, 0.7 + ulp, 0.3]], dtype=torch.float64)
    ids = torch.tensor([[4, 9, 4, 4], [2, 5, 2, 7]])
    fixed = _identical_at_one_distance(dist.clone(), ids)
    assert fixed.tolist() == [[0.25 + ulp] * 1 + [0.5] + [0.25 + ulp] * 2, [0.7, 0.1, 0.7, 0.3]]
    shared = _identical_at_one_distance(dist.clone(), torch.tensor([[1, 3, 1, 2]]))  # one column set
    assert shared[:, 2].tolist() == dist[:, 0].tolist() and shared[:, 3].tolist() == dist[:, 3].tolist()
    rows = torch.tensor([[0.0, 1.0], [0.0, 1.0], [3.0, 3.0], [0.0, 1.0]])
    space = neighbours_space(rows)
    assert space.duplicate_ids()[[0, 1, 3]].unique().numel() == 1 and space.duplicate_ids()[2] != space.duplicate_ids()[0]
    assert neighbours_space(torch.tensor([[0.0, 1.0], [2.0, 1.0]])).duplicate_ids() is None


def neighbours_space(x):
    from bridgeeval.metrics.neighbours import _Space

    return _Space(x.double(), "euclidean")


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("include_self", [False, True])
def test_running_selection_keeps_the_best_scores_of_both_sides_of_a_block(metric, include_self):
    """The numba selection against torch.topk: rows of a block, its columns (the symmetric half,
    read without a transposed copy), a diagonal block's own entries skipped or forced in."""
    from bridgeeval.metrics import selection

    if not selection.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(3)
    gram = torch.from_numpy(rng.normal(size=(70, 45)).astype(np.float32))
    gram[:, 7] = gram[:, 3]  # equal scores: any of them may be kept, the kept values are the same
    beta_cols = torch.from_numpy(rng.normal(size=45).astype(np.float32)) if metric == "euclidean" else None
    beta_rows = torch.from_numpy(rng.normal(size=70).astype(np.float32)) if metric == "euclidean" else None
    alpha = 2.0 if metric == "euclidean" else 1.0
    c = 9
    found = selection.RunningTopC(70 + 45, c)
    found.add_rows(gram, 0, 70, beta_cols, alpha)
    found.add_columns(gram, 0, 70, beta_rows, alpha)
    values, indices = found.result()
    row_scores = alpha * gram - (0 if beta_cols is None else beta_cols)
    col_scores = (alpha * gram - (0 if beta_rows is None else beta_rows.unsqueeze(1))).T
    for scores, kept, ids, offset in ((row_scores, values[:70], indices[:70], 70), (col_scores, values[70:], indices[70:], 0)):
        expected = torch.topk(scores, c, dim=1).values
        assert torch.equal(torch.sort(kept, dim=1, descending=True).values, expected)
        assert torch.equal(scores.gather(1, ids - offset), kept)  # each index names its score
    square = torch.from_numpy(rng.normal(size=(40, 40)).astype(np.float32))
    diagonal = selection.RunningTopC(40, c)
    diagonal.add_rows(square, 0, 0, diagonal=True, include_self=include_self)
    kept, ids = diagonal.result()
    own = (ids == torch.arange(40).unsqueeze(1)).sum(dim=1)
    assert own.tolist() == [int(include_self)] * 40
    masked = square.clone().fill_diagonal_(math.inf if include_self else -math.inf)
    assert torch.equal(torch.sort(kept, dim=1, descending=True).values, torch.topk(masked, c, dim=1).values)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_torch_topk_path_equals_the_running_selection_path(metric, monkeypatch):
    """Without numba (or on a GPU) the candidates come from torch.topk per block: same exact lists."""
    from bridgeeval.metrics import selection

    rng = np.random.default_rng(4)
    x = rng.normal(size=(900, 16)).astype(np.float32)
    x[[5, 600, 601]] = x[17]
    fast = knn_indices(x, 10, metric, block_size=128).numpy()
    monkeypatch.setattr(selection, "available", lambda: False)
    slow = knn_indices(x, 10, metric, block_size=128).numpy()
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(slow, brute_knn(x, 10, metric))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pair_dots_equal_float64_products_read_in_place(dtype, monkeypatch):
    from bridgeeval.metrics import selection

    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.normal(size=(300, 257)).astype(dtype))
    rows = torch.tensor([0, 7, 299, 7])
    cand = torch.from_numpy(rng.integers(0, 300, size=(4, 9)))
    monkeypatch.setattr(selection, "_PAIR_DOTS_MIN_WORK", 0)
    got = selection.pair_dots(x, rows, cand)
    assert selection.pair_dots(x.T.contiguous().T, rows, cand) is None  # not contiguous: the caller's gather
    assert selection.pair_dots(x.half(), rows, cand) is None
    x64 = x.double().numpy()
    expected = np.einsum("rd,rtd->rt", x64[rows.numpy()], x64[cand.numpy()])
    assert got.dtype == torch.float64 and got.shape == (4, 9)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("kernel", [True, False])
def test_both_rescoring_routes_keep_exact_lists_and_the_tie_rule(metric, kernel, monkeypatch):
    """The float64 rescoring by the numba kernel (large searches) and by torch's gather (small
    ones, or no numba) give the brute force's lists, near-ties and duplicates included."""
    from bridgeeval.metrics import selection

    if kernel:
        monkeypatch.setattr(selection, "_PAIR_DOTS_MIN_WORK", 0)
    else:
        monkeypatch.setattr(selection, "pair_dots", lambda *args: None)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(1200, 40)).astype(np.float32)
    x[600:650] = x[:50] + rng.normal(scale=1e-6, size=(50, 40)).astype(np.float32)  # near-ties in float32
    x[[5, 700, 1100]] = x[17]
    for block in (None, 256):
        np.testing.assert_array_equal(knn_indices(x, 10, metric, block_size=block).numpy(), brute_knn(x, 10, metric))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("include_self", [False, True])
def test_halved_diagonal_blocks_keep_both_sides_and_self(metric, include_self, monkeypatch):
    """Diagonal blocks of 1,024 and 476 rows, halved down to 64-row leaves (odd halves included):
    every pair is seen from both sides exactly as the unsplit blocks see it."""
    from bridgeeval.metrics import neighbours

    rng = np.random.default_rng(9)
    x = rng.normal(size=(1500, 12)).astype(np.float32)
    x[[3, 700, 1400]] = x[1100]  # duplicates across leaves and blocks
    expected = brute_knn(x, 10, metric, include_self)
    monkeypatch.setattr(neighbours, "_DIAGONAL_LEAF", 64)
    split = knn_indices(x, 10, metric, include_self, block_size=1024).numpy()
    monkeypatch.setattr(neighbours, "_DIAGONAL_LEAF", 10**9)
    whole = knn_indices(x, 10, metric, include_self, block_size=1024).numpy()
    np.testing.assert_array_equal(split, expected)
    np.testing.assert_array_equal(whole, expected)


def test_selection_imports_and_runs_where_numba_has_nowhere_to_cache(tmp_path):
    """A read-only install with a read-only home: numba finds no cache locator, which raises at
    decoration (import) time; the kernels are then compiled per process instead."""
    import subprocess
    import sys

    script = (
        "import numba.core.caching as c\n"
        "for cls in c.CacheImpl._locator_classes:\n"
        "    cls.from_function = classmethod(lambda cls, py_func, py_file: None)\n"
        "import numpy as np, torch\n"
        "from bridgeeval.metrics import knn_indices\n"
        "x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)\n"
        "np.save(sys.argv[1], knn_indices(x, 5, block_size=64).numpy())\n"
    )
    out = tmp_path / "lists.npy"
    done = subprocess.run([sys.executable, "-c", "import sys\n" + script, str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.load(out), brute_knn(x, 5))


@pytest.mark.parametrize("started", [True, False], ids=["pool-started", "only-imported"])
def test_numba_imported_by_another_library_first_still_works(tmp_path, started):
    """Another library imported numba (and maybe started its pool, one thread per core) before the
    first search, and torch runs another number of threads: numba re-reads its thread count from
    the environment at every later compilation and raises if it no longer matches the pool's."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, numba, numpy as np, torch\n"
        "@numba.njit(parallel=True)\n"
        "def other_library(a):\n"
        "    total = 0.0\n"
        "    for i in numba.prange(a.shape[0]):\n"
        "        total += a[i]\n"
        "    return total\n"
        + ("other_library(np.ones(64))\n" if started else "")
        + "torch.set_num_threads(numba.config.NUMBA_DEFAULT_NUM_THREADS + 1)\n"
        "from bridgeeval.metrics import knn_indices\n"
        "x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)\n"
        "lists = knn_indices(x, 5, block_size=64).numpy()\n"
        "numba.njit(lambda a: a.sum())(np.ones(3))  # a later compilation re-reads the environment\n"
        "np.save(sys.argv[1], lists)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_NUM_THREADS"}
    out = tmp_path / "lists.npy"
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.load(out), brute_knn(x, 5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_checks_by_row_chunks_name_the_first_bad_row_in_a_later_chunk(dtype):
    """The input checks and norms run by cache-sized chunks of rows (4,096 rows of 64 here): the row
    named is still the first bad one of the whole set, and the norms equal the unchunked ones."""
    from bridgeeval.metrics.neighbours import _row_sq_norms64
    from bridgeeval.metrics.validation import rowwise

    x = np.random.default_rng(6).normal(size=(10_000, 64)).astype(dtype)
    t = torch.from_numpy(x)
    assert rowwise(lambda rows: rows.sum(dim=1), t).shape == (10_000,)
    assert torch.equal(_row_sq_norms64(t), t.double().pow(2).sum(dim=1))
    bad = x.copy()
    bad[[9_000, 9_500]] = 0.0
    with pytest.raises(BridgeEvalError, match="row 9000 is a zero vector"):
        knn_indices(bad, 5)
    bad[5_000, 3] = np.inf
    with pytest.raises(BridgeEvalError, match="row 5000 has NaN or infinite values"):
        knn_indices(bad, 5)
