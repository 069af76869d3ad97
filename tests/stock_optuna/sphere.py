"""A stock-style Hydra app (as in hydra-optuna-sweeper's examples): no bridgeeval keys in its
config; returns x^2 + y^2, and fails on purpose when ``error`` is true."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error"):
        raise RuntimeError("cfg.error is True")
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    sphere()
