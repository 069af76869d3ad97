"""A Hydra callback that checks the composed config before Hydra creates the job folder, and
claims each job's folder before anything is written into it.

Hydra's own errors are several lines and exit 1; a bad value here is one line and exit 2, and no
``outputs/`` folder is left behind. Multiruns are checked on their base config; each job's own
overrides are checked again when the job starts (a failed job of a sweep is recorded).

Hydra saves a job's ``.hydra/`` configs before any callback sees the job, so it is told not to
(``hydra.output_subdir: null``) and they are saved here, once the folder is this job's
(``bridgeeval.runfolder``): a refused run leaves another run's folder exactly as it was.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bridgeeval.config.resolvers import register_resolvers
from bridgeeval.errors import BridgeEvalError

# A launcher's worker process (submitit, local or Slurm) unpickles this callback before it resolves
# the job's folder: the one place every job process passes through.
register_resolvers()


JOB_CONFIG_DIR = ".hydra"  # where Hydra keeps a job's configs; readers (reports) look there


class CheckConfig(Callback):
    def __init__(self) -> None:
        self._claims: dict[str, Any] = {}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_or_exit(config)
        _fail(_folder_error(config.hydra.run.dir), raise_it=False)  # leaves no folder: Hydra makes it

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_or_exit(config)
        _fail(_folder_error(config.hydra.sweep.dir), raise_it=False)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from bridgeeval.jobs import raise_to_sweeper
        from bridgeeval.runfolder import claim_run_folder

        records = Path(str(config.paths.output_dir))
        key = "hydra.sweep.dir" if HydraConfig.get().mode == RunMode.MULTIRUN else "hydra.run.dir"
        if records.resolve() != Path(str(config.hydra.runtime.output_dir)).resolve():
            key = "paths.output_dir"
        try:
            claim = claim_run_folder(records, overwrite=bool(config.get("overwrite", False)), key=key)
        except BridgeEvalError as err:
            _fail(err, raise_it=raise_to_sweeper())
            return
        self._claims[str(records)] = claim
        _save_job_configs(config, HydraConfig.instance().cfg)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        claim = self._claims.pop(str(config.paths.output_dir), None)
        if claim is not None:
            claim.release()


def _save_job_configs(config: DictConfig, hydra_cfg: DictConfig) -> None:
    """What Hydra's ``run_job`` saves, in the same files, written atomically."""
    from bridgeeval.files import write_text_atomic

    folder = Path(str(config.hydra.runtime.output_dir)) / JOB_CONFIG_DIR
    task_cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    for name, node in (("config.yaml", task_cfg), ("hydra.yaml", hydra_cfg),
                       ("overrides.yaml", config.hydra.overrides.task)):
        write_text_atomic(folder / name, OmegaConf.to_yaml(node))


def _folder_error(folder) -> BridgeEvalError | None:
    """The one line for a run or sweep folder that cannot be created or written, before Hydra tries."""
    from bridgeeval.files import writable_folder_error

    err = writable_folder_error(str(folder), keep=False)  # a refused run leaves no empty folder
    if err is None:
        return None
    return BridgeEvalError(f"output folder {folder}: cannot write there ({err.strerror or err}); "
                           "choose another with hydra.run.dir=... (or hydra.sweep.dir=..., paths.log_dir=...)")


def _fail(err: BridgeEvalError | None, raise_it: bool) -> None:
    if err is None:
        return
    if raise_it:  # a sweeper's job: the sweeper records the failure
        raise err
    print(f"bridgeeval: error: {err}", file=sys.stderr)
    raise SystemExit(2) from None


def _check_or_exit(config: DictConfig) -> None:
    from bridgeeval.config.checks import check_task_config

    try:
        check_task_config(config)
    except BridgeEvalError as err:
        _fail(err, raise_it=False)
