"""Training: ``train(cfg)`` runs one job of the main task."""

from bridgeeval.training import resolvers  # noqa: F401  (registers the configs' ${job_tag:})
from bridgeeval.training.run import SkippedJob, train

__all__ = ["SkippedJob", "train"]
