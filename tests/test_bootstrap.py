"""Bootstrap intervals against plain numpy and scipy references from the same resampled indices,
on real IAPR TC-12 features: per-item k-NN values from a brute-force search, CKA from its formula,
RSA from scipy's pdist and spearmanr with the copies' pairs left out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch
from conftest import brute_knn
from scipy.spatial.distance import pdist
from test_cli_score import run_cli
from test_measures import _iapr

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.bootstrap import bootstrap_intervals, check_bootstrap_options
from bridgeeval.metrics.representation import Representation

K, N, B, SEED = 10, 250, 60, 4


def _draws(n=N, resamples=B, seed=SEED):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(n, (n,), generator=generator).numpy() for _ in range(resamples)]


def _intervals(names):
    text, image = _iapr(N)
    sets = {"input": Representation(text), "target": Representation(image)}
    return text.numpy(), image.numpy(), bootstrap_intervals(sets, names, K, resamples=B, seed=SEED)


def _percentiles(values):
    return tuple(np.percentile(values, [2.5, 97.5]))


def test_knn_measures_resample_the_items_values():
    text, image, got = _intervals(["mnno", "cycle_knn"])
    a, b = brute_knn(text, K), brute_knn(image, K)
    overlap = np.array([len(set(a[i]) & set(b[i])) / K for i in range(N)])
    cycle = np.array([any(i in a[j] for j in b[i]) for i in range(N)], dtype=float)
    for name, items in (("mnno", overlap), ("cycle_knn", cycle)):
        interval = got[f"{name}_input_target"]
        assert interval.method == "items" and interval.resamples == B
        want = _percentiles([items[d].mean() for d in _draws()])
        assert (interval.low, interval.high) == pytest.approx(want, abs=1e-12), name


def test_cka_resamples_the_paired_rows():
    text, image, got = _intervals(["cka"])

    def cka(x, y):
        x, y = x - x.mean(0), y - y.mean(0)
        return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))

    interval = got["cka_input_target"]
    want = _percentiles([cka(text[d], image[d]) for d in _draws()])
    assert interval.method == "rows" and (interval.low, interval.high) == pytest.approx(want, abs=1e-10)


def test_rsa_leaves_out_the_pairs_of_an_item_with_its_copy():
    text, image, got = _intervals(["rsa"])
    values = []
    for d in _draws():
        distinct = pdist(d[:, None].astype(float)) > 0  # pairs of two different items
        a, b = pdist(text[d], "cosine")[distinct], pdist(image[d], "cosine")[distinct]
        values.append(scipy.stats.spearmanr(a, b).statistic)
    interval = got["rsa_input_target"]
    assert (interval.low, interval.high) == pytest.approx(_percentiles(values), abs=1e-9)


def test_the_interval_agrees_with_scipys_bootstrap_within_monte_carlo_error():
    """scipy draws its own resamples: with 4,000 of each the percentile ends agree closely."""
    text, image = _iapr(N)
    sets = {"input": Representation(text), "target": Representation(image)}
    ours = bootstrap_intervals(sets, ["mnno"], K, resamples=4000, seed=1)["mnno_input_target"]
    a, b = brute_knn(text.numpy(), K), brute_knn(image.numpy(), K)
    overlap = np.array([len(set(a[i]) & set(b[i])) / K for i in range(N)])
    theirs = scipy.stats.bootstrap((overlap,), np.mean, n_resamples=4000, method="percentile",
                                   random_state=np.random.default_rng(1)).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours.low - theirs.low) < 0.1 * width and abs(ours.high - theirs.high) < 0.1 * width


def test_cknna_gets_no_interval_and_options_are_checked():
    _, _, got = _intervals(["cknna"])
    assert got["cknna_input_target"] is None
    with pytest.raises(BridgeEvalError, match="resamples=1"):
        check_bootstrap_options(1, 0.95)
    with pytest.raises(BridgeEvalError, match="level=1.5"):
        check_bootstrap_options(100, 1.5)


def test_score_bootstrap_json_mirrors_the_measures(tmp_path):
    text, image = _iapr(N)
    np.save(tmp_path / "x.npy", text.numpy())
    np.save(tmp_path / "y.npy", image.numpy())
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", "--measures", "mnno,cka,cknna",
                             "--bootstrap", str(B), "--seed", str(SEED), "--json")
    assert code == 0, err
    got = json.loads(out)["interval"]
    assert got["cknna"] is None and got["cka"]["method"] == "rows" and got["mnno"]["resamples"] == B
    _, _, direct = _intervals(["mnno"])
    assert got["mnno"]["low"] == pytest.approx(direct["mnno_input_target"].low)
    assert got["mnno"]["low"] <= json.loads(out)["mnno"] <= got["mnno"]["high"]
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", "--bootstrap", "1")
    assert code == 2 and "must be 1 or more" not in err and "resamples=1" in err and "Traceback" not in err


def test_a_value_outside_its_own_interval_is_flagged_with_the_reason():
    """GULP on resampled rows is biased (duplicates raise its cross term): the report says so
    rather than print an interval that silently misses the value."""
    from bridgeeval.metrics.bootstrap import OUTSIDE_NOTE
    from bridgeeval.reports.calibrated import intervals_markdown

    interval = {"low": 79.35, "high": 79.88, "level": 0.95, "resamples": 200, "method": "rows"}
    inside = {"low": 0.38, "high": 0.40, "level": 0.95, "resamples": 200, "method": "items"}
    row = {"setting": "iaprtc text2image lin",
           "values": {f"{m}_{p}": v for m, v in (("mnno", 0.39), ("gulp", 80.39))
                      for p in ("input_mapped", "target_mapped", "input_target")},
           "interval": {f"{m}_{p}": i for m, i in (("mnno", inside), ("gulp", interval))
                        for p in ("input_mapped", "target_mapped", "input_target")}}
    text = intervals_markdown([row], ("gulp",))
    assert "| iaprtc text2image lin | gulp | 80.390 [79.350, 79.880] † |" in text
    assert "| iaprtc text2image lin | mnno | 0.390 [0.380, 0.400] |" in text
    assert OUTSIDE_NOTE in text
