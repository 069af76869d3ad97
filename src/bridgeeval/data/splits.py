"""The paper's protocol as index splits: k-fold cross-validation, or the official train/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgeeval.errors import BridgeEvalError

PROTOCOLS = ("auto", "cv", "split", "train_cv")
EVALUATIONS = ("fold", "pooled")  # cv.evaluate: per validation fold, or the out-of-fold f(X) over all items


@dataclass(frozen=True)
class Split:
    name: str  # "fold0".."fold4", or "split"
    train: np.ndarray
    val: np.ndarray


def kfold(n: int, folds: int, seed: int) -> list[Split]:
    """Shuffled contiguous folds (scikit-learn's KFold layout); the same for every training seed."""
    if folds < 2:
        raise BridgeEvalError(f"cv.folds: need at least 2 folds, got {folds}")
    if folds > n:
        raise BridgeEvalError(f"cv.folds={folds} is more than the {n} items")
    order = np.random.default_rng(seed).permutation(n)
    chunks = np.array_split(order, folds)
    return [
        Split(f"fold{i}", np.sort(np.concatenate(chunks[:i] + chunks[i + 1 :])), np.sort(chunk))
        for i, chunk in enumerate(chunks)
    ]


def protocol_splits(
    n: int, test_mask: np.ndarray | None, folds: int, fold: int | None, seed: int, protocol: str = "auto"
) -> tuple[str, list[Split]]:
    """The splits one job runs: ``("split", [train/test])`` or ``("cv", folds, or the one asked)``.

    ``auto`` uses the official split where the data set has one (the paper's protocol for IAPR TC-12
    and Wiki: fixed split, runs that vary the seed) and k-fold CV otherwise (as for ImageNet).
    ``train_cv`` is k-fold CV over the training items only (all items where there is no split):
    model selection that never sees the test set, as the paper's Appendix A chooses its
    hyperparameters.
    """
    if protocol not in PROTOCOLS:
        raise BridgeEvalError(f"cv.protocol: unknown {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "split" and test_mask is None:
        raise BridgeEvalError("cv.protocol=split: this data set has no official test split; use cv")
    if protocol in ("auto", "split") and test_mask is not None:
        test_mask = np.asarray(test_mask, dtype=bool)
        return "split", [Split("split", np.flatnonzero(~test_mask), np.flatnonzero(test_mask))]
    if protocol == "train_cv" and test_mask is not None:
        train = np.flatnonzero(~np.asarray(test_mask, dtype=bool))
        splits = [Split(s.name, train[s.train], train[s.val]) for s in kfold(len(train), folds, seed)]
    else:
        splits = kfold(n, folds, seed)
    if fold is not None:
        if not 0 <= fold < folds:
            raise BridgeEvalError(f"cv.fold={fold} is out of range for cv.folds={folds} (0..{folds - 1})")
        splits = [splits[fold]]
    return "cv", splits
