"""Training: ``train(cfg)`` runs one job of the main task."""

from bridgeeval.training.run import SkippedJob, train

__all__ = ["SkippedJob", "train"]
