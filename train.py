"""Train cross-modal mappings: `python train.py -m mapper=nn,lin loss=mse,cosine`.

Thin on purpose: Hydra composes conf/train.yaml, `bridgeeval.training.train` does the work, and the
returned value (`optimized_metric` of metrics.json) is what sweepers optimise.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from bridgeeval.config.entry import prepare_entry_point
from bridgeeval.jobs import run_task

log = logging.getLogger("train")

prepare_entry_point()  # before Hydra composes: the resolvers, its errors as one line


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Lightning (3.5 s of imports) only where a job runs: a bad override, or a sweep's driver whose
    # jobs run elsewhere (Slurm, submitit), never loads it.
    from bridgeeval.training import SkippedJob, train
    from bridgeeval.training.run import optimized_value

    try:
        summary = run_task(train, cfg, passthrough=(SkippedJob,))
    except SkippedJob as skip:
        log.warning("skipped: %s", skip)
        return optimized_value(None, cfg.get("optimized_metric"))
    return optimized_value(summary, cfg.get("optimized_metric"), select_epoch=bool(cfg.cv.select_epoch))


if __name__ == "__main__":
    main()
