"""The job's side of a sweep: report the monitored metric each epoch, stop when the pruner says so."""

from __future__ import annotations

import math

import optuna
import pytorch_lightning as pl

from bridgeeval.sweeps.coordination import PRUNER_ATTR, trial_id
from bridgeeval.sweeps.optuna_private import trial_handle
from bridgeeval.sweeps.samplers import build_pruner
from bridgeeval.sweeps.storage import open_storage


class OptunaPruning(pl.Callback):
    """Reports ``monitor`` after every validation epoch; raises ``optuna.TrialPruned`` to stop.

    ``step_offset`` places the epochs of later folds after those of earlier ones, so a k-fold job
    reports one increasing curve and the pruner compares trials at equal steps.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, step_offset: int = 0):
        self.trial, self.monitor, self.step_offset = trial, monitor, step_offset

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        step = self.step_offset + trainer.current_epoch
        if math.isfinite(value):
            self.trial.report(value, step)
        if not math.isfinite(value) or self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({self.monitor}={value:.6g})")


def job_trial(sweep_trial) -> optuna.Trial:
    """The running trial a sweep handed to this job (the ``sweep_trial`` config: storage, study, number)."""
    storage = open_storage(sweep_trial["storage"])
    study = optuna.load_study(study_name=sweep_trial["study_name"], storage=storage)
    study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR))
    return trial_handle(study, trial_id(study, int(sweep_trial["number"])))
