"""Validates the untrained map of one fold with a config's trainer and writes rank 0's validation
metrics as JSON: ``python tests/ddp_validate.py OUT.json N_ITEMS [OVERRIDES...]``.

A script, not a function: Lightning's DDP launcher starts the other ranks by running the same
command again. The map is the one ``train.py`` builds (seeded), evaluated before any training,
since training under DDP sees the data in another order.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from bridgeeval.config.checks import complete_train_config
from bridgeeval.config.resolvers import register_resolvers
from bridgeeval.data.datasets import load_paired
from bridgeeval.data.splits import protocol_splits
from bridgeeval.training.run import build_datamodule, build_module
from bridgeeval.training.trainer import build_trainer, known_harmless_warnings

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def main(out: str, n_items: int, overrides: list[str]) -> None:
    register_resolvers()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=["debug=fast", f"dataset.limit={n_items}", "cv.fold=0", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp(prefix="ddp-validate-")
    cfg = complete_train_config(cfg)
    data = load_paired(dict(cfg.dataset), dict(cfg.features), cfg.direction)
    _, (split,) = protocol_splits(len(data), data.test_mask, cfg.cv.folds, cfg.cv.fold, cfg.cv.seed, cfg.cv.protocol)
    module, datamodule = build_module(cfg, data), build_datamodule(cfg, data, split)
    with known_harmless_warnings():
        trainer = build_trainer(cfg.trainer, logger=False, callbacks=[])
        trainer.validate(module, datamodule=datamodule, verbose=False)
    if trainer.global_rank == 0:
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
        Path(out).write_text(json.dumps({"world_size": trainer.world_size, "n_val": len(split.val), **metrics}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
