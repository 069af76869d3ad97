"""The job's Lightning trainer: Lightning's ``Trainer`` with the CPU threads it runs on (and
Lightning's logging without its redundant moves, ``training.lightning_fixes``)."""

from __future__ import annotations

import contextlib
import os
import warnings

import hydra
import pytorch_lightning as pl
import torch

from bridgeeval.training.lightning_fixes import skip_redundant_log_moves


class Trainer(pl.Trainer):
    """Lightning's ``Trainer`` plus ``threads``, the CPU threads torch runs on (``use_threads``)."""

    def __init__(self, *args, threads: int | None = None, **kwargs) -> None:
        use_threads(threads)
        skip_redundant_log_moves()
        super().__init__(*args, **kwargs)


def use_threads(threads: int | None) -> None:
    """CPU threads for torch: ``trainer.threads`` (2 in conf/trainer), never more than a Slurm job's
    CPUs (jobs sharing a node would spin against each other); ``OMP_NUM_THREADS`` set by the user
    wins over both. Small maps on small batches gain little from many threads and lose much on a
    busy CPU, where fewer threads are faster. ``null`` keeps torch's default (all cores)."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    limit = int(cpus) if cpus and cpus.isdigit() else None
    wanted = threads if threads is not None else limit
    if wanted is None:
        return
    wanted = min(int(wanted), limit) if limit else int(wanted)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


@contextlib.contextmanager
def known_harmless_warnings():
    """Two warnings of every training, silenced where they arise and matched by their text only:
    Lightning's hint that `srun` exists (any Slurm login node; our Slurm jobs run through
    submitit), and torch's deprecation of LeafSpec inside Lightning's own pytree helper (nothing a
    user can change). A context, not a global filter, so it holds under pytest too."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        yield


def build_trainer(trainer_cfg, **kwargs) -> pl.Trainer:
    """The configured trainer (``conf/trainer``: ``Trainer`` above) with ``kwargs`` added."""
    with known_harmless_warnings():
        return hydra.utils.instantiate(trainer_cfg, **kwargs)
