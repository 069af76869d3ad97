"""A Hydra callback that checks the composed config before Hydra creates the job folder.

Hydra's own errors are several lines and exit 1; a bad value here is one line and exit 2, and no
``outputs/`` folder is left behind. Multiruns are checked on their base config; each job's own
overrides are checked again when the job starts (a failed job of a sweep is recorded).
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bridgeeval.config.resolvers import register_resolvers
from bridgeeval.errors import BridgeEvalError

# A launcher's worker process (submitit, local or Slurm) unpickles this callback before it resolves
# the job's folder: the one place every job process passes through.
register_resolvers()


class CheckConfig(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_or_exit(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_or_exit(config)


def _check_or_exit(config: DictConfig) -> None:
    from bridgeeval.config.checks import check_task_config

    try:
        check_task_config(config)
    except BridgeEvalError as err:
        print(f"bridgeeval: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
