"""Hydra plugin shell: the config schema and the ``Sweeper`` Hydra discovers; the work is in
``bridgeeval.sweeps``.

Accepts the stock ``hydra-optuna-sweeper`` ``params`` syntax (``choice``, ``range``, ``interval``,
``tag(log, ...)``, ``int(...)``) and runs on current Optuna with resumable, shareable studies.
No ``from __future__ import annotations`` here: Hydra executes plugin modules outside
``sys.modules``, where dataclasses cannot resolve string annotations.
"""

import sys
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.bridgeeval_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    sampler: str = "tpe"  # grid, tpe, random, cmaes, qmc
    seed: Any = 0
    direction: str = "minimize"
    study_name: str = "${task_name}"
    # sqlite:///PATH (one machine), journal:///PATH (shared file system), postgresql://USER@HOST:PORT/DB
    storage: str = "sqlite:///${paths.log_dir}/optuna/${hydra.sweeper.study_name}.db"
    n_trials: Any = None  # finished trials the study should hold (grid: its size)
    n_jobs: int = 1  # trials per launcher batch
    max_failure_rate: float = 0.25
    params: dict = field(default_factory=dict)
    # {"loss.name=max_margin": {"loss.margin": "choice(...)"}}: params searched only when the
    # composed config has that value.
    conditional_params: dict = field(default_factory=dict)
    pruner: Any = "median"  # none, median, percentile, hyperband, successive_halving, or {name: ..., ...}
    heartbeat_interval: float = 30.0
    grace_period: float = 300.0  # a RUNNING trial with no heartbeat for this long is lost (other hosts)
    retry_failed: bool = False
    max_retries: int = 2  # reruns of a trial whose job ended without a result
    poll_interval: float = 5.0  # while waiting for trials that other workers run


def active_params(conditional: dict, config: DictConfig) -> dict:
    """The conditional params whose ``key=value`` condition holds in the composed config."""
    active = {}
    for condition, params in conditional.items():
        key, _, want = condition.partition("=")
        if str(OmegaConf.select(config, key.strip(), default=None)) == want.strip():
            active.update(params or {})
    return active


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="bridgeeval")


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list) -> Any:
        from bridgeeval.errors import BridgeEvalError
        from bridgeeval.sweeps.sweeper import OptunaSweep, SweepInterrupted, SweepSettings

        settings = {k: v for k, v in self.settings.items() if not k.startswith("_")}
        for key in ("params", "pruner", "conditional_params"):
            if isinstance(settings.get(key), DictConfig):
                settings[key] = OmegaConf.to_container(settings[key], resolve=True)
        conditional = settings.pop("conditional_params", None) or {}
        settings["params"] = {**(settings.get("params") or {}), **active_params(conditional, self.config)}
        sweep = None
        try:
            sweep = OptunaSweep(SweepSettings(**settings), self.launcher, arguments)
            return sweep.run()
        except BridgeEvalError as err:  # bad settings or too many failures: one line, no traceback
            print(f"bridgeeval: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except (KeyboardInterrupt, SweepInterrupted, SystemExit):
            signum = sweep.interrupted_by() if sweep is not None else None
            if signum is None:
                raise
            print(f"bridgeeval: sweep stopped by {signum.name}: trials in flight failed and requeued, "
                  "their Slurm jobs cancelled; rerun the same command to resume", file=sys.stderr)
            raise SystemExit(128 + signum.value) from None
