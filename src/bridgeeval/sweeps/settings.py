"""The Optuna sweeper's settings: one schema for the Hydra plugin's config and the sweep itself.

The stock ``hydra-optuna-sweeper``'s keys keep their stock defaults (a stock config runs
unchanged); bridgeeval's additions default to the stock behaviour. No optuna import here: Hydra
loads the plugin, and so this module, in every process it starts.
No ``from __future__ import annotations``: OmegaConf reads these annotations at run time.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

FORMS = "journal:///ABS/PATH.log, journal:REL/PATH.log, sqlite:///REL.db, sqlite:////ABS.db or postgresql://USER@HOST:PORT/DB"


@dataclass
class SweepSettings:
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler"})
    seed: Optional[int] = None  # used when the sampler config has no seed of its own
    direction: Any = "minimize"  # or a list, e.g. [minimize, maximize], for several objectives
    # null: in memory. sqlite:///PATH (one machine), journal:///PATH (shared file system),
    # postgresql://USER@HOST:PORT/DB (several machines)
    storage: Optional[str] = None
    study_name: Optional[str] = None  # null: a new study with a generated name
    n_trials: Optional[int] = 20  # null with the grid sampler: the whole grid
    n_jobs: int = 2  # trials per launcher batch
    max_failure_rate: float = 0.0
    params: Optional[Dict[str, Any]] = None
    custom_search_space: Optional[str] = None  # "module.function", called as function(cfg, trial)
    search_space: Any = None  # removed upstream: refused with a pointer to params
    pruner: Any = None  # null: no pruning; else a {"_target_": "optuna.pruners.X", args...} config
    # bridgeeval's additions (defaults keep the stock results):
    resume: bool = False  # true: n_trials counts the study's finished trials, so a rerun completes it
    failure_rate_over: str = "batch"  # batch (stock: each batch on its own) or sweep (all this run's trials)
    # {"loss.name=max_margin": {"loss.margin": "choice(...)"}}: params searched only when the
    # composed config has that value; a null value takes a key out of the search.
    conditional_params: Dict[str, Any] = field(default_factory=dict)
    heartbeat_interval: float = 30.0
    grace_period: float = 300.0  # a RUNNING trial with no heartbeat for this long is lost (other hosts)
    retry_failed: bool = False
    max_retries: int = 2  # reruns of a trial whose job ended without a result
    poll_interval: float = 5.0  # while waiting for trials that other workers run


def default_storage(study_name: str, log_dir: Union[str, Path] = "outputs") -> str:
    """Where a study is kept unless ``storage`` says otherwise: ``sqlite:///<log_dir>/optuna/<study>.db``
    (``sweeps/*.yaml`` spell the same with ``${paths.log_dir}``; ``sweep best|status`` and
    ``reproduce`` look there)."""
    return f"sqlite:///{Path(log_dir) / 'optuna' / f'{study_name}.db'}"
