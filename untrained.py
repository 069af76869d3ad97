"""Experiment 2 of the paper: `python untrained.py` (untrained maps on word-similarity benchmarks)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from bridgeeval.config.entry import prepare_entry_point
from bridgeeval.jobs import run_task
from bridgeeval.untrained.run import run_untrained

prepare_entry_point()  # before Hydra composes: the resolvers, its errors as one line


@hydra.main(version_base="1.3", config_path="conf", config_name="untrained")
def main(cfg: DictConfig) -> None:
    run_task(run_untrained, cfg)


if __name__ == "__main__":
    main()
