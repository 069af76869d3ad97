"""``mapper=lstsq``: the closed-form linear map, checked against numpy's and scikit-learn's solvers
on the very training items of a job's fold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from bridgeeval.data.datasets import load_paired
from bridgeeval.data.splits import protocol_splits
from bridgeeval.errors import BridgeEvalError
from bridgeeval.models.mappers import LeastSquaresMap
from bridgeeval.models.module import load_map
from bridgeeval.training import train
from test_train import make_cfg


def _fold(cfg, index: int):
    data = load_paired(dict(cfg.dataset), dict(cfg.features), cfg.direction)
    _, splits = protocol_splits(len(data), data.test_mask, cfg.cv.folds, None, cfg.cv.seed, cfg.cv.protocol)
    return data, splits[index]


@pytest.mark.slow
def test_a_lstsq_job_is_numpys_least_squares_on_its_folds_training_items(tmp_path):
    cfg = make_cfg(tmp_path, "mapper=lstsq", "cv.fold=1", "checkpoint=true", "trainer.max_epochs=7")
    train(cfg)
    data, split = _fold(cfg, 1)
    x, y = data.input[split.train].astype(np.float64), data.target[split.train].astype(np.float64)
    coef = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0]  # [W^T; b]
    mapper = load_map(tmp_path / "checkpoints" / "fold1.ckpt")
    assert isinstance(mapper, LeastSquaresMap)
    x_val = data.input[split.val]
    expected = np.hstack([x_val, np.ones((len(x_val), 1))]) @ coef
    got = mapper(torch.from_numpy(x_val)).detach().numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    # Solved once: one epoch whatever max_epochs says, and its validation loss is that of numpy's map.
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["folds"][0]["epochs"] == 1 and (tmp_path / "history.csv").read_text().count("\n") == 2
    mse = float(np.mean(np.sum((expected - data.target[split.val]) ** 2, axis=1)) / data.target.shape[1])
    assert record["val/loss"] == pytest.approx(mse, rel=1e-4)


@pytest.mark.parametrize("alpha", [0.01, 1.0, 100.0])
def test_a_ridge_penalty_is_scikit_learns_ridge_with_an_unpenalised_intercept(alpha):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 12)), rng.normal(size=(80, 5)) + 3.0
    ridge = Ridge(alpha=alpha, fit_intercept=True, solver="svd").fit(x, y)
    ours = LeastSquaresMap(12, 5, alpha=alpha).fit(torch.from_numpy(x), torch.from_numpy(y))
    assert np.allclose(ours.weight.double().numpy(), ridge.coef_, atol=1e-5)
    assert np.allclose(ours.bias.double().numpy(), ridge.intercept_, atol=1e-5)


def test_more_features_than_items_gives_the_minimum_norm_exact_fit():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 20)), rng.normal(size=(6, 3))
    ours = LeastSquaresMap(20, 3, alpha=0.0).fit(torch.from_numpy(x), torch.from_numpy(y))
    assert np.allclose(ours(torch.from_numpy(x).float()).detach().numpy(), y, atol=1e-4)
    w = ours.weight.double().numpy().T
    xc = x - x.mean(0)
    assert np.allclose(w, np.linalg.pinv(xc) @ (y - y.mean(0)), atol=1e-5)  # the smallest such W


@pytest.mark.parametrize("alpha, message", [(-1.0, "mapper.alpha=-1.0: must be a finite number, 0 or more"),
                                            (float("inf"), "mapper.alpha=inf"), ("big", "mapper.alpha='big'"),
                                            (None, "mapper.alpha is required for mapper=lstsq")])
def test_a_bad_alpha_is_one_line(alpha, message):
    with pytest.raises(BridgeEvalError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LeastSquaresMap(3, 2, alpha=alpha)


def test_fit_names_mismatched_shapes():
    with pytest.raises(BridgeEvalError, match=r"fit takes n x 3 inputs and n x 2 targets, got \(4, 3\) and \(5, 2\)"):
        LeastSquaresMap(3, 2, alpha=0.0).fit(torch.zeros(4, 3), torch.zeros(5, 2))
