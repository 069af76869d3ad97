"""``MappingModule``: a mapper, a loss and an optimiser, with mNNO logged every epoch on the module's device."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from bridgeeval.metrics import MeanNearestNeighborOverlap, knn_indices
from bridgeeval.models.losses import compute_loss

REPORTED = ("mnno_input_mapped", "mnno_target_mapped", "mnno_input_target", "mse", "r2", "recall_at_k", "hubness")
# Unsuffixed names are the first neighbour metric's; further metrics log these with a suffix
# (e.g. _euclidean). Each key is logged once: Lightning's self.log costs ~0.15 ms a key on CPU.
NEIGHBOUR_KEYS = ("mnno_input_mapped", "mnno_target_mapped", "mnno_input_target", "recall_at_k", "hubness")


class MappingModule(pl.LightningModule):
    """A mapper (an ``nn.Module``, or the keyword arguments of ``build_mapper``), its loss and
    optimiser, and the neighbourhood metrics of every validation epoch.

    Built from a spec, the module saves its hyperparameters, so that
    ``MappingModule.load_from_checkpoint(path)`` rebuilds the trained map on its own (the optimiser
    factory is not saved: a reloaded map is for applying, ``bridgeeval map``).
    """

    def __init__(
        self,
        mapper: nn.Module | dict,
        loss: str = "mse",
        margin: float = 0.5,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        k: int = 10,
        neighbors: tuple[str, ...] = ("cosine",),
        include_self: bool = False,
        on_train: bool = False,
    ):
        super().__init__()
        if isinstance(mapper, dict):
            from bridgeeval.models.mappers import build_mapper

            self.save_hyperparameters(ignore=["optimizer"])
            mapper = build_mapper(**mapper)
        self.mapper = mapper
        self.loss_name, self.margin = loss, margin
        self.optimizer_factory = optimizer or (lambda params: torch.optim.RMSprop(params, lr=1e-3))
        self.k, self.neighbors, self.include_self, self.on_train = k, tuple(neighbors), include_self, on_train
        self.val_metrics = nn.ModuleDict(
            {m: MeanNearestNeighborOverlap(k=k, metric=m, include_self=include_self) for m in self.neighbors}
        )
        self._train_cache: dict[str, dict[str, torch.Tensor]] = {}
        self.metric_seconds = 0.0  # time spent on the neighbourhood metrics this epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapper(x)

    def training_step(self, batch, batch_idx):
        x, y, classes, _ = batch
        loss = compute_loss(self.loss_name, self(x), y, classes, self.margin)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def on_fit_start(self) -> None:
        # Neighbours of X and Y never change during training: computed once, on this device.
        dm = self.trainer.datamodule
        stages = ["val"] + (["train"] if self.on_train else [])
        for stage in stages:
            x, y = (t.to(self.device) for t in dm.arrays(stage))
            cache = {
                m: {
                    "input": knn_indices(x, self.k, m, self.include_self),
                    "target": knn_indices(y, self.k, m, self.include_self),
                }
                for m in self.neighbors
            }
            if stage == "val":
                for m, refs in cache.items():
                    self.val_metrics[m].cache_reference(refs["input"], refs["target"])
            else:
                self._train_cache = cache

    def validation_step(self, batch, batch_idx):
        x, y, classes, index = batch
        mapped = self(x)
        loss = compute_loss(self.loss_name, mapped, y, classes, self.margin)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        start = time.perf_counter()
        for metric in self.val_metrics.values():
            metric.update(x, y, mapped, index)
        self.metric_seconds += time.perf_counter() - start

    def on_validation_epoch_start(self) -> None:
        self.metric_seconds = 0.0

    def on_validation_epoch_end(self) -> None:
        start = time.perf_counter()
        for i, (name, metric) in enumerate(self.val_metrics.items()):
            self._log_report("val", name, metric.compute(), primary=i == 0)
            metric.reset()
        if self.on_train and not self.trainer.sanity_checking:
            self._log_train_report()
        self.metric_seconds += time.perf_counter() - start

    @torch.no_grad()
    def _log_train_report(self) -> None:
        """The paper's Fig. 2 train curves: the whole training set mapped in eval mode."""
        from bridgeeval.metrics import cross_modal_report

        x, y = (t.to(self.device) for t in self.trainer.datamodule.arrays("train"))
        mapped = self(x)
        for i, name in enumerate(self.neighbors):
            report = cross_modal_report(
                x, y, mapped, k=self.k, metric=name, include_self=self.include_self, neighbours=self._train_cache[name]
            )
            self._log_report("train", name, report, primary=i == 0)

    def _log_report(self, stage: str, metric_name: str, report: dict[str, float], primary: bool) -> None:
        if primary:
            values = {f"{stage}/{key}": report[key] for key in REPORTED}
        else:
            values = {f"{stage}/{key}_{metric_name}": report[key] for key in NEIGHBOUR_KEYS}
        # Every rank computed the report of the whole gathered set: no further reduction.
        self.log_dict(values, on_step=False, on_epoch=True, sync_dist=False)

    def configure_optimizers(self):
        return self.optimizer_factory(self.parameters())


def load_map(path) -> nn.Module:
    """The trained mapper of a ``checkpoint=true`` checkpoint, in eval mode on the CPU; a file that
    is not one is one line naming it."""
    from pathlib import Path

    from bridgeeval.errors import BridgeEvalError

    path = Path(path)
    if not path.is_file():
        raise BridgeEvalError(f"{path}: no such checkpoint")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise BridgeEvalError(f"{path}: not a checkpoint ({type(err).__name__})") from None
    spec = (saved.get("hyper_parameters") or {}).get("mapper") if isinstance(saved, dict) else None
    if not isinstance(spec, dict):
        raise BridgeEvalError(f"{path}: not a bridgeeval map checkpoint (no mapper hyperparameters; "
                              "train with checkpoint=true)")
    module = MappingModule.load_from_checkpoint(path, map_location="cpu")
    return module.mapper.eval()
