"""The protocols as index splits: k-fold CV, the official split, and CV inside the training items."""

import numpy as np
import pytest

from bridgeeval.data.splits import protocol_splits
from bridgeeval.errors import BridgeEvalError


def test_folds_cover_every_item_once_and_never_train_on_their_own_items():
    protocol, splits = protocol_splits(103, None, 5, None, seed=0)
    assert protocol == "cv" and [s.name for s in splits] == [f"fold{i}" for i in range(5)]
    held_out = np.concatenate([s.val for s in splits])
    assert sorted(held_out) == list(range(103))
    assert all(not set(s.train) & set(s.val) and len(s.train) + len(s.val) == 103 for s in splits)


def test_train_cv_selects_inside_the_training_items_and_never_sees_the_test_set():
    test = np.zeros(50, dtype=bool)
    test[[3, 7, 11, 40, 41, 49]] = True
    protocol, splits = protocol_splits(50, test, 4, None, seed=1, protocol="train_cv")
    assert protocol == "cv" and len(splits) == 4
    train_items = set(np.flatnonzero(~test))
    for s in splits:
        assert set(s.train) | set(s.val) == train_items and not set(s.train) & set(s.val)
    assert sorted(np.concatenate([s.val for s in splits])) == sorted(train_items)
    # the same folds as plain CV would make on the training items alone
    _, plain = protocol_splits(44, None, 4, None, seed=1)
    order = np.flatnonzero(~test)
    assert all((order[p.val] == s.val).all() for p, s in zip(plain, splits))
    # where there is no split, train_cv is plain CV; auto takes the official split
    assert [s.val.tolist() for s in protocol_splits(50, None, 4, None, 1, "train_cv")[1]] == [
        s.val.tolist() for s in protocol_splits(50, None, 4, None, 1, "cv")[1]]
    protocol, (split,) = protocol_splits(50, test, 4, None, seed=1)
    assert protocol == "split" and split.val.tolist() == [3, 7, 11, 40, 41, 49]


def test_an_unknown_protocol_or_fold_is_one_line():
    with pytest.raises(BridgeEvalError, match="choose one of auto, cv, split, train_cv"):
        protocol_splits(10, None, 2, None, 0, "loo")
    with pytest.raises(BridgeEvalError, match=r"cv.fold=2 is out of range for cv.folds=2 \(0..1\)"):
        protocol_splits(10, None, 2, 2, 0, "cv")
