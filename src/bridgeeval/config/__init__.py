"""Typed task configs and their checks (``schema``, ``checks``), and the Hydra callback that runs
them before a job folder exists (``callback``)."""

from bridgeeval.config.checks import check_task_config, check_train_config, check_untrained_config

__all__ = ["check_task_config", "check_train_config", "check_untrained_config"]
