"""Train cross-modal mappings: `python train.py -m mapper=nn,lin loss=mse,cosine`.

Thin on purpose: Hydra composes conf/train.yaml, `bridgeeval.training.train` does the work, and the
returned value (`optimized_metric` of metrics.json) is what sweepers optimise.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bridgeeval.errors import BridgeEvalError
from bridgeeval.training import SkippedJob, train
from bridgeeval.training.run import optimized_value

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except SkippedJob as skip:
        log.warning("skipped: %s", skip)
        return optimized_value(None, cfg.get("optimized_metric"))
    except BridgeEvalError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a failed job of a sweep: the sweeper records it and goes on
        print(f"bridgeeval: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return optimized_value(summary, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
