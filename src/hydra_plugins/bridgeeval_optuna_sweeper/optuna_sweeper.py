"""Hydra plugin shell: the config schema and the ``Sweeper`` Hydra discovers; the work is in
``bridgeeval.sweeps``.

Accepts the stock ``hydra-optuna-sweeper`` ``params`` syntax (``choice``, ``range``, ``interval``,
``tag(log, ...)``, ``int(...)``) and runs on current Optuna with resumable, shareable studies.
No ``from __future__ import annotations`` here: Hydra executes plugin modules outside
``sys.modules``, where dataclasses cannot resolve string annotations.
"""

import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from bridgeeval.sweeps.settings import SweepSettings


@dataclass
class SamplerConf:
    """An Optuna sampler by ``_target_``; a null argument means Optuna's own default."""

    _target_: str = MISSING
    seed: Optional[int] = None


@dataclass
class TPESamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.TPESampler"
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: Optional[int] = None
    n_ei_candidates: Optional[int] = None
    multivariate: Optional[bool] = None
    group: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None
    constant_liar: Optional[bool] = None


@dataclass
class RandomSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: Optional[Dict[str, Any]] = None
    sigma0: Optional[float] = None
    n_startup_trials: Optional[int] = None
    warn_independent_sampling: Optional[bool] = None
    consider_pruned_trials: Optional[bool] = None
    restart_strategy: Optional[str] = None
    popsize: Optional[int] = None
    inc_popsize: Optional[int] = None
    use_separable_cma: Optional[bool] = None
    with_margin: Optional[bool] = None
    lr_adapt: Optional[bool] = None


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: Optional[int] = None
    mutation_prob: Optional[float] = None
    crossover_prob: Optional[float] = None
    swapping_prob: Optional[float] = None


@dataclass
class QMCSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: Optional[str] = None
    scramble: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None
    warn_asynchronous_seeding: Optional[bool] = None


@dataclass
class GPSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: Optional[int] = None
    deterministic_objective: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None


@dataclass
class GridSamplerConf(SamplerConf):
    """Every combination of the discrete params, each once (a queue shared by all workers)."""

    _target_: str = "optuna.samplers.GridSampler"


@dataclass
class MOTPESamplerConf(SamplerConf):
    """Kept so that stock configs naming it get Optuna's own answer: removed in Optuna 4."""

    _target_: str = "optuna.samplers.MOTPESampler"


SAMPLER_CONFS = {
    "tpe": TPESamplerConf,
    "random": RandomSamplerConf,
    "cmaes": CmaEsSamplerConf,
    "nsgaii": NSGAIISamplerConf,
    "qmc": QMCSamplerConf,
    "gp": GPSamplerConf,
    "grid": GridSamplerConf,
    "motpe": MOTPESamplerConf,
}


@dataclass
class PrunerConf:
    """An Optuna pruner by ``_target_``; a null argument means Optuna's own default."""

    _target_: str = MISSING


@dataclass
class NopPrunerConf(PrunerConf):
    """No pruning: every trial runs to its end (the stock plugin's behaviour)."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConf(PrunerConf):
    """Stops a trial whose value is worse than the median of earlier trials at the same epoch,
    once a few full curves exist to judge by."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: Optional[int] = 5
    n_warmup_steps: Optional[int] = 2
    interval_steps: Optional[int] = None
    n_min_trials: Optional[int] = None


@dataclass
class PercentilePrunerConf(MedianPrunerConf):
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0


@dataclass
class SuccessiveHalvingPrunerConf(PrunerConf):
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = None
    reduction_factor: Optional[int] = None
    min_early_stopping_rate: Optional[int] = None
    bootstrap_count: Optional[int] = None


@dataclass
class HyperbandPrunerConf(PrunerConf):
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: Optional[int] = None
    max_resource: Any = None
    reduction_factor: Optional[int] = None
    bootstrap_count: Optional[int] = None


@dataclass
class ThresholdPrunerConf(PrunerConf):
    """Stops a trial whose value leaves [lower, upper] (or is NaN); set at least one bound."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: Optional[int] = None
    interval_steps: Optional[int] = None


PRUNER_CONFS = {
    "none": NopPrunerConf,
    "median": MedianPrunerConf,
    "percentile": PercentilePrunerConf,
    "successive_halving": SuccessiveHalvingPrunerConf,
    "hyperband": HyperbandPrunerConf,
    "threshold": ThresholdPrunerConf,
}


@dataclass
class OptunaSweeperConf(SweepSettings):
    """``SweepSettings`` (the one schema) as a Hydra sweeper config: the sampler arrives as a config
    group, and each worker builds its own sampler and pruner (with its own seed)."""

    sampler: Any = MISSING  # hydra/sweeper/sampler=tpe|random|cmaes|nsgaii|qmc|gp|grid
    pruner: Any = MISSING  # hydra/sweeper/pruner=none|median|percentile|hyperband|successive_halving|threshold
    _target_: str = "hydra_plugins.bridgeeval_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])


def active_params(conditional: dict, config: DictConfig) -> dict:
    """The conditional params whose condition holds in the composed config: ``group=option`` (a
    config group's choice, e.g. ``mapper=lin``) or ``key=value`` (a value, e.g. ``depth=1``)."""
    active = {}
    choices = OmegaConf.select(config, "hydra.runtime.choices", default=None) or {}
    for condition, params in conditional.items():
        key, _, want = (part.strip() for part in condition.partition("="))
        have = choices[key] if key in choices else OmegaConf.select(config, key, default=None)
        if str(have) == want:
            active.update(params or {})
    return active


# Two names: `optuna` (the stock plugin's, so stock configs run unchanged) and `bridgeeval_optuna`
# (unambiguous where the stock plugin is installed too and may take `optuna`).
for _name in ("optuna", "bridgeeval_optuna"):
    ConfigStore.instance().store(group="hydra/sweeper", name=_name, node=OptunaSweeperConf, provider="bridgeeval")
for _name, _node in SAMPLER_CONFS.items():
    ConfigStore.instance().store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="bridgeeval")
for _name, _node in PRUNER_CONFS.items():
    ConfigStore.instance().store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="bridgeeval")


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list) -> None:
        from bridgeeval.errors import BridgeEvalError
        from bridgeeval.sweeps.sweeper import OptunaSweep, SweepInterrupted

        settings = {k: _plain(v) for k, v in self.settings.items() if not k.startswith("_") and k != "defaults"}
        conditional = settings.pop("conditional_params") or {}
        # A conditional value replaces the key's; null takes it out of the search.
        params = {**(settings.get("params") or {}), **active_params(conditional, self.config)}
        settings["params"] = {key: value for key, value in params.items() if value is not None}
        sweep = None
        try:
            sweep = OptunaSweep(SweepSettings(**settings), self.launcher, arguments, config=self.config)
            study = sweep.run()
            _write_results(self.config, study)
        except BridgeEvalError as err:  # bad settings or too many failures: one line, no traceback
            print(f"bridgeeval: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except OSError as err:  # the driver's own files: the study's storage or the sweep folder
            where = f"{err.filename}: " if err.filename else ""
            print(f"bridgeeval: error: sweep stopped: cannot write {where}{err.strerror or err}; its jobs were "
                  "stopped and the trials in flight run again on resume: rerun the same command once it is "
                  "writable", file=sys.stderr)
            raise SystemExit(2) from None
        except (KeyboardInterrupt, SweepInterrupted, SystemExit):
            signum = sweep.interrupted_by() if sweep is not None else None
            if signum is None:
                raise
            print(f"bridgeeval: sweep stopped by {signum.name}: trials in flight failed and requeued, "
                  "their Slurm jobs cancelled; rerun the same command to resume", file=sys.stderr)
            raise SystemExit(128 + signum.value) from None


def _plain(value: Any) -> Any:
    """Config nodes as plain containers (Enum directions of stock configs as their names)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    return value


def _write_results(config: DictConfig, study) -> None:
    """``optimization_results.yaml`` in the sweep folder, as the stock plugin writes it."""
    from pathlib import Path

    from bridgeeval.files import write_text_atomic
    from bridgeeval.sweeps.sweeper import optimization_results

    folder = Path(str(config.hydra.sweep.dir))
    write_text_atomic(folder / "optimization_results.yaml", OmegaConf.to_yaml(optimization_results(study)))
