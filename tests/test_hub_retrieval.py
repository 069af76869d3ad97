"""Plain, CSLS and inverted-softmax retrieval and target hubness against a dense numpy reference
written from the papers' definitions (Conneau et al. 2018, Eq. 6; Smith et al. 2017, Eq. 5), on
real IAPR TC-12 features mapped by least squares and on random data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from test_measures import _iapr

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import recall_at_k
from bridgeeval.metrics.hub_retrieval import hub_retrieval


def numpy_reference(q, t, k, metric, beta=None):
    q, t = np.asarray(q, dtype=np.float64), np.asarray(t, dtype=np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        sim = q @ t.T
    else:
        sim = -((q[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    n = len(q)
    r_q = np.sort(sim, axis=0)[-k:, :].mean(axis=0)  # each target's mean over its k nearest queries
    forms = {"": sim, "_csls": 2 * sim - r_q[None, :]}
    if beta is not None:
        forms["_isf"] = beta * sim - scipy.special.logsumexp(beta * sim, axis=0)[None, :]
    out = {}
    for form, score in forms.items():
        ranks, counts = np.empty(n), np.zeros(n)
        for i in range(n):
            order = np.lexsort((np.arange(n), -score[i]))  # by score, ties to the lower index
            ranks[i] = int(np.nonzero(order == i)[0][0])
            counts[order[:k]] += 1
        out[f"recall_at_1{form}"] = float((ranks < 1).mean())
        out[f"recall_at_k{form}"] = float((ranks < k).mean())
        out[f"target_hubness{form}"] = float(scipy.stats.skew(counts, bias=True))
    return out


def _iapr_mapped(n=800):
    text, image = _iapr(n)
    design = np.c_[image.numpy(), np.ones(n)]
    weights = np.linalg.lstsq(design, text.numpy(), rcond=None)[0]
    return torch.from_numpy(design @ weights), text


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_equals_numpy_on_iapr_features_mapped_by_least_squares(metric):
    mapped, text = _iapr_mapped()
    got = hub_retrieval(mapped, text, k=10, metric=metric, isf_beta=10.0, block=300)
    want = numpy_reference(mapped, text, 10, metric, beta=10.0)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    assert got["recall_at_k"] == pytest.approx(recall_at_k(mapped, text, 10, metric))  # the report's own


def test_csls_lowers_hubness_on_real_mapped_vectors():
    """The reason CSLS exists, on real data: mapped vectors' targets are hubs, and CSLS both
    lowers that skew and retrieves more own targets."""
    mapped, text = _iapr_mapped()
    got = hub_retrieval(mapped, text, k=10)
    assert got["target_hubness"] > 1.0
    assert got["target_hubness_csls"] < got["target_hubness"]
    assert got["recall_at_k_csls"] > got["recall_at_k"]


@pytest.mark.parametrize("k", [1, 3])
def test_random_data_any_block_size(k):
    g = torch.Generator().manual_seed(k)
    q, t = torch.randn(97, 6, generator=g, dtype=torch.float64), torch.randn(97, 6, generator=g, dtype=torch.float64)
    t = t + q  # some signal
    one = hub_retrieval(q, t, k=k, block=7)
    assert one == hub_retrieval(q, t, k=k)
    want = numpy_reference(q, t, k, "cosine")
    assert all(one[key] == pytest.approx(want[key], abs=1e-9) for key in want)


def test_ties_go_to_the_lower_index():
    """Two identical targets: the first is retrieved, so query 1's own target ranks second."""
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    got = hub_retrieval(t.clone(), t, k=1)
    assert got["recall_at_1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(("kwargs", "says"), [({"isf_beta": 0.0}, "isf_beta=0.0"), ({"k": 50}, "k=50")])
def test_bad_arguments_are_one_line(kwargs, says):
    q = torch.randn(20, 3)
    with pytest.raises(BridgeEvalError, match=says):
        hub_retrieval(q, q, **kwargs)
    with pytest.raises(BridgeEvalError, match="same shape"):
        hub_retrieval(q, q[:10])


def test_score_reports_them_for_three_files(tmp_path):
    import json

    from test_cli_score import run_cli

    mapped, text = _iapr_mapped(300)
    for name, t in (("x", text), ("y", text), ("f", mapped)):
        np.save(tmp_path / f"{name}.npy", t.numpy())
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "f.npy", "--isf-beta", "10",
                             "--json")
    assert code == 0, err
    got = json.loads(out)
    want = hub_retrieval(mapped, text, k=10, isf_beta=10.0)
    assert all(got[key] == pytest.approx(value) for key, value in want.items())
    code, out, err = run_cli("score", tmp_path / "x.npy", tmp_path / "y.npy", "--isf-beta", "10")
    assert code == 2 and "--isf-beta ranks targets for mapped vectors" in err and "Traceback" not in err


def test_the_hook_logs_them_with_metrics_retrieval(tmp_path):
    """metrics.retrieval=true: each epoch's values equal hub_retrieval on the fold's kept f(X)."""
    import subprocess
    import sys

    import pandas as pd
    from test_train import REPO

    from bridgeeval.data.datasets import load_paired

    args = ["debug=fast", "cv.folds=2", "trainer.max_epochs=2", "logger=none", "metrics.retrieval=true"]
    proc = subprocess.run([sys.executable, "train.py", *args, f"hydra.run.dir={tmp_path}"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    history = pd.read_csv(tmp_path / "history.csv")
    last = history[history["split"] == "fold0"].iloc[-1]
    index = np.load(tmp_path / "items.npz")["fold0.index"]
    data = load_paired({"name": "imagenet1k"}, None, "text2image")
    mapped = torch.from_numpy(np.load(tmp_path / "mapped.npy")[index])
    want = hub_retrieval(mapped, torch.from_numpy(np.asarray(data.target)[index]), k=10)
    for key, value in want.items():
        assert last[f"val/{key}"] == pytest.approx(value, rel=1e-6, abs=1e-6), key
