"""Per-item results of a job: each validation item's NNO, and the out-of-fold pooled evaluation.

``items.npz`` beside ``metrics.json`` holds, per split, the validation items' indices and their
NNO@K for (X, f(X)), (Y, f(X)) and (X, Y) under the job's first neighbour metric, so that reports
can test on items (the paper's rank-sum tests are over items, not folds). When the splits are
k folds covering every item once, the out-of-fold predictions are also evaluated together over the
whole set (``pooled``), as the released code evaluates one test set: ``metrics.json`` gets the
``pooled/...`` values and ``items.npz`` the pooled per-item values.

The mapped vectors themselves are kept too: ``mapped.npy``, the out-of-fold f(X) of every item in
the data's row order, when the folds cover the set (``bridgeeval score X Y mapped.npy`` then gives
the job's pooled values); otherwise ``mapped_splits.npz`` with each split's ``<split>.index`` and
``<split>.mapped``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bridgeeval.files import atomic_target
from bridgeeval.metrics import cross_modal_report, knn_indices, nn_overlap
from bridgeeval.metrics.measures import MappedAlignment
from bridgeeval.records import ITEMS_FILE, MAPPED_FILE, MAPPED_SPLITS_FILE

PAIRS = {"nno_input_mapped": ("input", "mapped"), "nno_target_mapped": ("target", "mapped"),
         "nno_input_target": ("input", "target")}


def neighbour_lists(x, y, mapped, k: int, metric: str, include_self: bool) -> dict[str, torch.Tensor]:
    sets = (("input", x), ("target", y), ("mapped", mapped))
    return {name: knn_indices(v, k, metric, include_self) for name, v in sets}


def item_overlaps(lists: dict[str, torch.Tensor], k: int) -> dict[str, np.ndarray]:
    """NNO@K of every item for the three pairs (the values whose means are the mNNOs)."""
    return {key: (nn_overlap(lists[a], lists[b]).double() / k).numpy() for key, (a, b) in PAIRS.items()}


class ItemRecorder:
    """Collects each split's validation items and f(X) after training (and, for ``cv.evaluate=pooled``,
    after every epoch); writes ``items.npz``."""

    def __init__(self, n_items: int, k: int, metric: str, include_self: bool, measures=(), measure_options=None):
        self.n, self.k, self.metric, self.include_self = n_items, k, metric, include_self
        # The alignment measures of the pooled f(X) (metrics.measures), X's and Y's parts kept.
        self.alignment = MappedAlignment(measures, k, metric, include_self, measure_options)
        self.arrays: dict[str, np.ndarray] = {}
        self._mapped: dict[str, tuple[np.ndarray, torch.Tensor]] = {}
        self._index: dict[str, np.ndarray] = {}
        self._epochs: dict[str, dict[int, torch.Tensor]] = {}
        self._whole: dict[str, torch.Tensor] = {}

    def _whole_set_lists(self, x_all: torch.Tensor, y_all: torch.Tensor, mapped: torch.Tensor) -> dict:
        """Neighbour lists over all items; X's and Y's never change, so they are searched once for
        the per-epoch curves and the final pooled evaluation together."""
        if not self._whole:
            self._whole = {"input": knn_indices(x_all, self.k, self.metric, self.include_self),
                           "target": knn_indices(y_all, self.k, self.metric, self.include_self)}
        return {**self._whole, "mapped": knn_indices(mapped, self.k, self.metric, self.include_self)}

    def add_epoch(self, split: str, index: np.ndarray, epoch: int, mapped: torch.Tensor) -> None:
        """f(X) of a split's validation items after one epoch (for the pooled per-epoch curves)."""
        self._index[split] = np.asarray(index)
        self._epochs.setdefault(split, {})[epoch] = mapped

    def pooled_curves(self, x_all: torch.Tensor, y_all: torch.Tensor) -> list[dict]:
        """Per epoch that every fold reached, the out-of-fold f(X) at that epoch evaluated over the
        whole set: rows of ``history.csv`` with split ``pooled`` and ``pooled/...`` values."""
        if len(self._epochs) < 2 or not _covers(list(self._index.values()), self.n):
            return []
        x_all, y_all = x_all.float(), y_all.float()
        rows = []
        for epoch in sorted(set.intersection(*(set(e) for e in self._epochs.values()))):
            mapped = _assemble(self.n, [(self._index[s], e[epoch]) for s, e in self._epochs.items()])
            lists = self._whole_set_lists(x_all, y_all, mapped)
            report = cross_modal_report(x_all, y_all, mapped, k=self.k, metric=self.metric,
                                        include_self=self.include_self, neighbours=lists)
            report.update(self.alignment(x_all, y_all, mapped, lists))
            rows.append({"split": "pooled", "epoch": epoch, **{f"pooled/{k}": float(v) for k, v in report.items()}})
        return rows

    def add_split(self, name: str, index: np.ndarray, x, y, mapped) -> None:
        values = item_overlaps(neighbour_lists(x, y, mapped, self.k, self.metric, self.include_self), self.k)
        self.arrays[f"{name}.index"] = np.asarray(index)
        self.arrays.update({f"{name}.{key}": v for key, v in values.items()})
        self._mapped[name] = (np.asarray(index), mapped)

    def out_of_fold(self) -> torch.Tensor | None:
        """f(X) of every item from the fold that held it out, in the data's row order, when the
        splits are folds that cover every item exactly once; else None."""
        if len(self._mapped) < 2 or not _covers([i for i, _ in self._mapped.values()], self.n):
            return None
        return _assemble(self.n, list(self._mapped.values()))

    def pooled(self, x_all: torch.Tensor, y_all: torch.Tensor) -> dict[str, float] | None:
        """The report over all items at once from the out-of-fold f(X), when the splits are folds
        that cover every item exactly once; else None."""
        mapped = self.out_of_fold()
        if mapped is None:
            return None
        x_all, y_all = x_all.float(), y_all.float()
        lists = self._whole_set_lists(x_all, y_all, mapped)
        self.arrays["pooled.index"] = np.arange(self.n)
        self.arrays.update({f"pooled.{key}": v for key, v in item_overlaps(lists, self.k).items()})
        # The same lists serve the report: each set's neighbours are searched once.
        report = cross_modal_report(x_all, y_all, mapped, k=self.k, metric=self.metric,
                                    include_self=self.include_self, neighbours=lists)
        report.update(self.alignment(x_all, y_all, mapped, lists))
        return {f"pooled/{key}": float(value) for key, value in report.items()}

    def write(self, folder: Path) -> Path:
        """``items.npz`` and the mapped vectors (``mapped.npy`` or ``mapped_splits.npz``)."""
        folder = Path(folder)
        with atomic_target(folder / ITEMS_FILE) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **self.arrays)
        pooled = self.out_of_fold()
        if pooled is not None:
            with atomic_target(folder / MAPPED_FILE) as tmp, open(tmp, "wb") as handle:
                np.save(handle, pooled.numpy())
        elif self._mapped:
            splits = {}
            for name, (index, mapped) in self._mapped.items():
                splits[f"{name}.index"], splits[f"{name}.mapped"] = index, mapped.float().numpy()
            with atomic_target(folder / MAPPED_SPLITS_FILE) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, **splits)
        return folder / ITEMS_FILE


def _covers(indices: list[np.ndarray], n: int) -> bool:
    """The splits' validation items are every item exactly once (k folds, not one split)."""
    index = np.concatenate(indices)
    return len(index) == n and len(np.unique(index)) == n


def _assemble(n: int, parts: list[tuple[np.ndarray, torch.Tensor]]) -> torch.Tensor:
    """The out-of-fold f(X) of all items, each from the fold that held it out."""
    mapped = torch.empty((n, parts[0][1].shape[1]), dtype=torch.float32)
    for index, values in parts:
        mapped[torch.as_tensor(index)] = values.float()
    return mapped
