"""OmegaConf resolvers the configs use (``${job_tag:}``); each entry point calls
``register_resolvers()`` before Hydra composes (train.py, untrained.py, the tests, and the Hydra
callback module that every job process, a launcher's worker included, loads)."""

from __future__ import annotations

import os
import socket

from omegaconf import OmegaConf


def job_tag() -> str:
    """host-pid (plus the SLURM job id): run folders of concurrent processes never collide."""
    slurm = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    tag = f"{socket.gethostname().split('.')[0]}-{os.getpid()}"
    return f"{tag}-slurm{slurm}" if slurm else tag


def register_resolvers() -> None:
    """Registers every resolver once (idempotent)."""
    if not OmegaConf.has_resolver("job_tag"):
        OmegaConf.register_new_resolver("job_tag", job_tag, use_cache=True)

