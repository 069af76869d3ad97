"""Callbacks of the training loop: the per-epoch history with the validation hook's cost."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class EpochHistory(pl.Callback):
    """One row per epoch: every logged epoch metric, the split, and where the epoch's time went.

    ``time/val_*`` is Lightning's whole validation loop; ``time/metrics_*`` only the neighbourhood
    metrics of the validation hook (``MappingModule.metric_seconds``).
    """

    def __init__(self, split: str):
        self.split = split
        self.rows: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()
        self._val_seconds = 0.0

    def on_validation_start(self, trainer, pl_module):
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        self._val_seconds += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer, pl_module):
        # In Lightning 2 validation runs before this hook, so val/* of this epoch are here.
        seconds = time.perf_counter() - self._epoch_start
        row = {"split": self.split, "epoch": trainer.current_epoch}
        row.update({key: float(value) for key, value in sorted(trainer.callback_metrics.items())})
        row["time/epoch_s"] = seconds
        row["time/val_s"] = self._val_seconds
        row["time/val_fraction"] = self._val_seconds / seconds if seconds > 0 else 0.0
        metric_seconds = getattr(pl_module, "metric_seconds", 0.0)
        row["time/metrics_s"] = metric_seconds
        row["time/metrics_fraction"] = metric_seconds / seconds if seconds > 0 else 0.0
        self.rows.append(row)


class EpochMapped(pl.Callback):
    """f(X) of the split's validation items after every epoch, for the pooled per-epoch curves
    (``cv.evaluate=pooled``): the out-of-fold predictions of all folds at each epoch."""

    def __init__(self, recorder, split: str, index):
        self.recorder, self.split, self.index = recorder, split, index

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        from bridgeeval.models.mappers import mapped_values

        x, _ = trainer.datamodule.arrays("val")
        self.recorder.add_epoch(self.split, self.index, trainer.current_epoch, mapped_values(pl_module.mapper, x))


class ProgressBar(pl.callbacks.RichProgressBar):
    """Lightning's rich progress bar without ``v_num`` (the logger's version, e.g. ``fold0``),
    which reads as a metric; the split is in the bar's description already."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
