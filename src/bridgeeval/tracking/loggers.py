"""The loggers of one job: a CSV log per split, and one W&B run for the whole job.

A job's folds share its W&B run: each fold's curves under ``fold0/...``, ``fold1/...``, the
mean over folds under ``train/*`` and ``val/*`` (all against ``epoch``), the job's summary
(means, stds, pooled values) in the run summary and each fold's final values in a ``folds``
table. Runs are grouped by multirun folder or Optuna study, and typed ``direction/mapper``, so
W&B's grouped view never averages unlike maps within one type.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import loggers as pl_loggers
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from bridgeeval.errors import BridgeEvalError
from bridgeeval.tracking.wandb_mode import decide

log = logging.getLogger("bridgeeval")


def job_identity() -> dict[str, str]:
    """Run name (the job's overrides) and group (the multirun's folder, or the run's)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return {"name": "run", "group": "run"}
    overrides = ",".join(o for o in hc.overrides.task if not o.startswith(("hydra.", "paths.", "sweep_trial.")))
    multirun = hc.mode == RunMode.MULTIRUN
    group = Path(hc.sweep.dir).name if multirun else Path(hc.run.dir).name
    name = overrides or hc.job.name
    if multirun:
        name = f"{hc.job.num}:{name}"
    return {"name": name, "group": group}


def _study_group(cfg: DictConfig) -> str | None:
    """Trials of one Optuna study share a W&B group, whichever worker or sweep folder ran them."""
    study = (cfg.get("sweep_trial") or {}).get("study_name")
    return f"optuna:{study}" if study else None


def _is_wandb(spec) -> bool:
    return str(spec.get("_target_", "")).endswith("WandbLogger")


class WandbLogger(pl_loggers.WandbLogger):
    """Lightning's ``WandbLogger`` with ``mode``: ``auto`` goes online when the user has W&B
    credentials and the server answers, else offline; ``online`` and ``offline`` force it
    (``wandb_mode.decide``). ``decision`` is ``(offline, reason)``."""

    def __init__(self, *args, mode: str = "auto", **kwargs) -> None:
        if "offline" in kwargs:
            raise BridgeEvalError(f"logger.wandb.offline={kwargs['offline']}: replaced by logger.wandb.mode=offline "
                                  "(or online, or auto)")
        self.decision = decide(mode)
        super().__init__(*args, offline=self.decision[0], **kwargs)


def open_wandb_run(cfg: DictConfig, spec, out_dir: Path, job_type: str):
    """The W&B logger of ``spec`` with its run started: the job's name, group and resolved config,
    and one line on the terminal saying where the run is (W&B's own ~35 console lines a run are
    silenced unless the spec sets ``settings``)."""
    import wandb

    who = job_identity()
    extra = {
        "save_dir": str(out_dir),
        "name": who["name"],
        "group": spec.get("group") or _study_group(cfg) or who["group"],
        "job_type": spec.get("job_type") or job_type,
        "tags": list(cfg.get("tags") or []),
    }
    if not spec.get("settings"):
        extra["settings"] = wandb.Settings(silent=True)
    # Lightning's WandbLogger sets WANDB_MODE=dryrun in this process for an offline run: restored
    # once the run has started, so the next job of a multirun decides from the user's own setting.
    user_mode = os.environ.get("WANDB_MODE")
    try:
        logger = hydra.utils.instantiate(spec, **extra)
        # Lightning passes `anonymous=None`, which wandb >= 0.19 warns about on every run.
        if getattr(logger, "_wandb_init", {}).get("anonymous", False) is None:
            del logger._wandb_init["anonymous"]
        run = logger.experiment
    finally:
        if user_mode is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = user_mode
    run.config.update(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), allow_val_change=True)
    run_dir = Path(run.dir).parent
    offline, reason = getattr(logger, "decision", None) or (bool(run.offline), f"{spec['_target_']}'s own setting")
    if offline:
        log.warning("W&B offline (%s): %s; upload later with `wandb sync %s`", reason, run_dir, run_dir)
    else:
        log.info("W&B run %s: %s", run.name, run.url)
    return logger


class FoldLogger(Logger):
    """One split's view of the job's W&B run: its metrics under ``<split>/...`` against the epoch."""

    def __init__(self, run, split: str):
        super().__init__()
        self.run, self.split = run, split
        run.define_metric(f"{split}/*", step_metric="epoch")

    @property
    def name(self) -> str:
        return "wandb"

    @property
    def version(self) -> str:
        return self.split

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The job's resolved config is the run's config already (``open_wandb_run``)."""

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        row = {f"{self.split}/{key}": value for key, value in metrics.items() if key != "epoch"}
        if "epoch" in metrics:
            row["epoch"] = metrics["epoch"]
        self.run.log(row)


class JobLoggers:
    """Opened once per job (a context manager); ``for_split`` gives each split's Lightning loggers
    and ``record`` puts the job's result into its W&B run before it is finished."""

    def __init__(self, cfg: DictConfig, out_dir: Path, job_type: str):
        self.cfg, self.out_dir = cfg, out_dir
        self.specs = [spec for spec in (cfg.get("logger") or {}).values() if spec]
        wandb_specs = [spec for spec in self.specs if _is_wandb(spec)]
        self.wandb = open_wandb_run(cfg, wandb_specs[0], out_dir, job_type) if wandb_specs else None

    def __enter__(self) -> JobLoggers:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self.wandb is not None:
            import wandb

            wandb.finish(exit_code=1 if kind else 0)

    def for_split(self, split: str) -> list:
        """One split's loggers: its own CSV log (``csv/<split>``) and its view of the W&B run."""
        return self._loggers(
            lambda: FoldLogger(self.wandb.experiment, split), {"save_dir": str(self.out_dir), "name": "csv", "version": split}
        )

    def whole_job(self) -> list:
        """Loggers for a job without splits (untrained.py): the W&B run itself, a CSV log in the job folder."""
        return self._loggers(lambda: self.wandb, {"save_dir": str(self.out_dir)})

    def _loggers(self, wandb_view, csv_args: dict) -> list:
        loggers = []
        for spec in self.specs:
            if _is_wandb(spec):
                loggers.append(wandb_view())
            elif str(spec.get("_target_", "")).endswith("CSVLogger"):
                loggers.append(hydra.utils.instantiate(spec, **csv_args))
            else:
                loggers.append(hydra.utils.instantiate(spec))
        return loggers

    def record(self, summary: dict, history: list[dict]) -> None:
        """The mean curves over folds, the summary's numbers and the per-fold table."""
        if self.wandb is None:
            return
        import wandb

        run = self.wandb.experiment
        for prefix in ("train/*", "val/*", "pooled/*"):
            run.define_metric(prefix, step_metric="epoch")
        for row in mean_curves(history):
            run.log(row)
        run.summary.update({k: v for k, v in summary.items() if _is_number(v)})
        folds = summary.get("folds") or []
        if folds:
            columns = sorted({key for fold in folds for key in fold if key == "split" or _is_number(fold[key])})
            columns.remove("split")
            data = [[fold["split"], *[fold.get(key) for key in columns]] for fold in folds]
            run.log({"folds": wandb.Table(columns=["split", *columns], data=data)})


def mean_curves(history: list[dict]) -> list[dict]:
    """Per epoch, the mean of each ``train/*`` and ``val/*`` value over the splits that reached it
    (and the ``pooled/*`` values of ``cv.evaluate=pooled``, one row an epoch)."""
    by_epoch: dict[int, list[dict]] = defaultdict(list)
    for row in history:
        by_epoch[int(row["epoch"])].append(row)
    curves = []
    for epoch in sorted(by_epoch):
        rows = by_epoch[epoch]
        keys = sorted({k for r in rows for k in r if k.startswith(("train/", "val/", "pooled/")) and _is_number(r[k])})
        means = {k: sum(r[k] for r in rows if k in r) / sum(k in r for r in rows) for k in keys}
        curves.append({"epoch": epoch, **means})
    return curves


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
