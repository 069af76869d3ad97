"""Experiment tracking shared by every entry point: which loggers a job gets, and W&B's mode."""

from bridgeeval.tracking.loggers import JobLoggers, open_wandb_run

__all__ = ["JobLoggers", "open_wandb_run"]
