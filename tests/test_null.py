"""Permutation nulls against calibrated-similarity's ``calibrate`` on real IAPR TC-12 features
(the same shuffles, so the same tau, p-value and calibrated score), against recomputing every
measure on the shuffled set from scratch, and mNNO's chance level against full enumeration."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from calibrated_similarity import calibrate
from test_cli_score import run_cli
from test_measures import _iapr

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.measures import MEASURES, measure
from bridgeeval.metrics.null import calibrate_value, chance_level, check_null_options, permutation_nulls
from bridgeeval.metrics.representation import Representation

K_NN = 10


def _nulls(a, b, names, permutations, seed=0, include_self=False, **options):
    sets = {name: Representation(t, include_self=include_self) for name, t in (("input", a), ("target", b))}
    return permutation_nulls(sets, names, K_NN, options=options, permutations=permutations, seed=seed)


def _weakened(image: torch.Tensor, paired: int) -> torch.Tensor:
    """The first ``paired`` rows kept, the rest shuffled among themselves: a weak pairing."""
    order = torch.randperm(len(image) - paired, generator=torch.Generator().manual_seed(3))
    rest = torch.arange(paired, len(image))[order]
    return image[torch.cat([torch.arange(paired), rest])]


@pytest.mark.parametrize("paired", [400, 20], ids=["paired", "20-of-400-paired"])
@pytest.mark.parametrize("name", ["mnno", "cka", "cycle_knn", "procrustes"])
def test_the_null_is_calibrated_similaritys_on_iapr_features(name, paired):
    """Same seed, same shuffles: tau, p and the calibrated score are calibrate()'s (which computes
    in float32). Fully paired, the calibrated score is positive; with 20 of 400 rows paired the
    null is not wholly below the observed value (p above its floor 1 / (K + 1))."""
    text, image = _iapr(400)
    image = _weakened(image, paired)
    m, permutations = MEASURES[name], 60
    ours = _nulls(text, image, [name], permutations, seed=7)[f"{name}_input_target"]
    sign = 1.0 if m.higher_is_better else -1.0  # calibrate() reads similarities: a distance negated

    def sim(x, y):
        return sign * measure(name, x, y, k=K_NN)

    score, p_value, tau = calibrate(text, image, sim, K=permutations, alpha=0.05, smax=1.0 if sign > 0 else None,
                                    generator=torch.Generator().manual_seed(7))
    assert ours.permutations == permutations
    assert ours.p_value == pytest.approx(float(p_value), abs=1e-7)
    assert sign * ours.tau == pytest.approx(float(tau), rel=1e-6, abs=1e-7)
    if sign > 0:
        assert ours.calibrated == pytest.approx(float(score), abs=1e-6)
    else:  # calibrate's unnormalised effect relu(s - tau), over our best - tau = 0 - (-tau)
        assert ours.calibrated == pytest.approx(float(score) / ours.tau, abs=1e-6)
    if paired == len(text):
        assert ours.calibrated > 0 and ours.p_value == pytest.approx(1 / (permutations + 1))
    else:
        assert ours.p_value > 1.0 / (permutations + 1)


def test_every_measure_s_null_equals_shuffling_from_scratch():
    """The permuted representation's carried-over parts (lists, copies, norms) give each null value
    exactly what a new representation of the shuffled rows gives."""
    text, image = _iapr(300)
    permutations = 4
    small = {"rtd_trials": 2, "rtd_batch": 40, "gs_repeats": 5}  # the topological ones at a test's cost
    ours = _nulls(text, image, list(MEASURES), permutations, seed=11, **small)
    generator = torch.Generator().manual_seed(11)
    shuffles = [torch.randperm(len(image), generator=generator) for _ in range(permutations)]
    for name in MEASURES:
        if not MEASURES[name].paired:  # a one-set statistic: no shuffle moves it, so no null
            assert ours[f"{name}_input_target"] is None
            continue
        values = [measure(name, text, image[p], k=K_NN, **small) for p in shuffles]
        assert ours[f"{name}_input_target"].mean == pytest.approx(float(np.mean(values)), rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize(("n", "k", "include_self"), [(6, 2, False), (6, 3, True), (7, 1, False)])
def test_mnno_chance_is_the_mean_over_every_pairing(n, k, include_self):
    """All n! pairings enumerated: their mean mNNO is k / (n - 1) (self counted: (1 + (k-1)^2/(n-1)) / k)."""
    g = torch.Generator().manual_seed(n * 10 + k)
    a, b = torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randn(n, 4, generator=g, dtype=torch.float64)
    values = [measure("mnno", a, b[list(p)], k=k, include_self=include_self) for p in itertools.permutations(range(n))]
    assert math.factorial(n) == len(values)
    assert float(np.mean(values)) == pytest.approx(chance_level("mnno", n, k, include_self), abs=1e-12)


def test_the_null_mean_sits_at_chance_on_real_features():
    """2,000 shuffles of IAPR TC-12 text against its images: the null's mean is mNNO's chance
    level within Monte Carlo error (4 standard errors)."""
    text, image = _iapr(500)
    null = _nulls(text, image, ["mnno"], 2000, seed=1)["mnno_input_target"]
    chance = chance_level("mnno", 500, K_NN, False)
    assert null.chance == chance
    # A null value is the mean of 500 overlaps of a k-subset with a random k-subset of 499: its
    # variance is at most that of 500 independent ones (hypergeometric, over k^2).
    per_item = K_NN * (K_NN / 499) * (1 - K_NN / 499) * (499 - K_NN) / 498 / K_NN**2
    assert abs(null.mean - chance) < 4 * math.sqrt(per_item / 500 / 2000) + 1e-4


def test_a_distance_is_read_on_its_left_tail():
    """Procrustes distance (lower: closer): the p-value counts null values at or below it."""
    null = calibrate_value(0.2, torch.tensor([0.9, 0.1, 0.8, 0.7]), alpha=0.25, higher_is_better=False, best=0.0)
    assert null.p_value == pytest.approx(2 / 5)  # 0.1 <= 0.2, and the add-one
    assert null.tau == pytest.approx(0.2)  # the 4th of the 5 negated values
    assert null.calibrated == 0.0


def test_seeded_and_reproducible():
    text, image = _iapr(200)
    one, two = (_nulls(text, image, ["mnno", "cka"], 30, seed=5) for _ in range(2))
    other = _nulls(text, image, ["mnno", "cka"], 30, seed=6)
    assert one == two and one["cka_input_target"].mean != other["cka_input_target"].mean


@pytest.mark.parametrize(("permutations", "alpha", "says"), [(0, 0.05, "permutations=0"), (10, 1.0, "alpha=1.0"),
                                                             (True, 0.05, "permutations=True")])
def test_bad_null_options_are_one_line(permutations, alpha, says):
    with pytest.raises(BridgeEvalError, match=says):
        check_null_options(permutations, alpha)


def test_score_null_json_mirrors_the_measures(tmp_path):
    text, image = _iapr(300)
    np.save(tmp_path / "x.npy", text.numpy())
    np.save(tmp_path / "y.npy", image.numpy())
    np.save(tmp_path / "f.npy", (text @ torch.randn(text.shape[1], image.shape[1], dtype=torch.float64)).numpy())
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", "--measures", "mnno,cka", "--null", "20",
                             "--json")
    assert code == 0, err
    got = json.loads(out)
    assert set(got["null"]) == {"mnno", "cka"}
    assert set(got["null"]["mnno"]) == {"permutations", "alpha", "mean", "tau", "p_value", "calibrated", "chance"}
    assert "chance" not in got["null"]["cka"] and got["null"]["cka"]["permutations"] == 20
    assert got["null"]["mnno"]["chance"] == pytest.approx(K_NN / 299)

    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "f.npy", "--measures", "mnno",
                             "--null", "5", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert set(got["null"]) == {"input_target", "input_mapped", "target_mapped"}
    assert got["null"]["input_mapped"]["mnno"]["permutations"] == 5

    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "f.npy", "--null", "5",
                             "--include-self", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert set(got["null"]) == {"mnno_input_target", "mnno_input_mapped", "mnno_target_mapped"}
    assert got["null"]["mnno_input_target"]["chance"] == pytest.approx((1 + 9**2 / 299) / 10)
    plain = json.loads(run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "f.npy",
                               "--include-self", "--json")[1])
    assert all(got[key] == plain[key] for key in plain)  # the null adds, it changes nothing


@pytest.mark.parametrize(("args", "says"), [(["--null", "0"], "--null: 0 must be 1 or more"),
                                            (["--null", "5", "--alpha", "0"], "alpha=0.0: must lie strictly between"),
                                            (["--null", "5", "--sample", "10"], "--null shuffles every row")])
def test_score_null_bad_options_say_one_line(tmp_path, args, says):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(30, 4)))
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "x.npy", *args)
    assert code == 2 and says in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_kept_kernels_give_cka_s_null_as_computing_it_again():
    """RBF CKA's shuffles from the kept N x N kernels (one gather and a dot product) equal RBF CKA
    computed again, for both estimators."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(120, 80, generator=g, dtype=torch.float64)
    noise = torch.randn(120, 90, generator=g, dtype=torch.float64)
    b = a @ torch.randn(80, 90, generator=g, dtype=torch.float64) + 3 * noise
    names = ["cka_rbf", "unbiased_cka_rbf"]
    kept, again = (_nulls_with_budget(a, b, names, budget) for budget in (1 << 30, 0))
    for name in names:
        one, two = kept[f"{name}_input_target"], again[f"{name}_input_target"]
        assert one.mean == pytest.approx(two.mean, rel=1e-10) and one.tau == pytest.approx(two.tau, rel=1e-10), name
        assert one.p_value == two.p_value


def _nulls_with_budget(a, b, names, budget):
    sets = {"input": Representation(a), "target": Representation(b)}
    return permutation_nulls(sets, names, K_NN, permutations=15, seed=2, kernel_budget=budget)


def test_no_closed_form_chance_where_duplicates_push_self_out_of_its_list():
    """Self counted, the closed form assumes each item in its own list; duplicated rows (a
    collapsed map) tie at distance 0 and the lower index wins, so it no longer holds: the null
    (whose mean then sits below the formula) is reported without a chance level."""
    import numpy as np

    from bridgeeval.metrics.null import permutation_nulls
    from bridgeeval.metrics.overlap import mnno_chance
    from bridgeeval.metrics.representation import Representation

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(60, 5)))
    dup = x[torch.arange(60) % 10]  # ten rows, six copies each: the lowest five indices fill every copy's list
    for other, has_chance in ((x * 2 + 1, True), (dup, False)):
        sets = {"input": Representation(x, include_self=True), "target": Representation(other, include_self=True)}
        null = permutation_nulls(sets, ["mnno"], 5, {"input_target": ("input", "target")}, permutations=200)
        chance = null["mnno_input_target"].chance
        assert (chance == pytest.approx(mnno_chance(60, 5, True))) if has_chance else chance is None
