"""Experiment 2 of the paper: `python untrained.py` (untrained maps on word-similarity benchmarks)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from bridgeeval.config.resolvers import register_resolvers
from bridgeeval.jobs import run_task
from bridgeeval.untrained.run import run_untrained

register_resolvers()  # before Hydra composes: the run folders use ${job_tag:}


@hydra.main(version_base="1.3", config_path="conf", config_name="untrained")
def main(cfg: DictConfig) -> None:
    run_task(run_untrained, cfg)


if __name__ == "__main__":
    main()
