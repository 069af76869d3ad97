"""Where this process sits among those ``torchrun`` or ``srun`` launched together, read from the
environment alone (no torch import: a usage error stays quick)."""

from __future__ import annotations

import os

# (size, rank) variables of each launcher: torchrun's first, then Slurm's for this step.
_LAUNCHERS = (("WORLD_SIZE", "RANK"), ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"))


def _launcher() -> tuple[int, int]:
    for size, rank in _LAUNCHERS:
        if os.environ.get(size, "").isdigit():
            value = os.environ.get(rank, "0")
            return int(os.environ[size]), int(value) if value.isdigit() else 0
    return 1, 0


def launched_world() -> int:
    """Processes this one was launched among (1 alone)."""
    return _launcher()[0]


def launched_rank() -> int:
    """This process's rank among them (0 alone): the first one speaks for all."""
    world, rank = _launcher()
    return rank if world > 1 else 0
