"""Loggers of one split: CSV by default, W&B grouped by multirun and named after the overrides."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf


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


def build_loggers(cfg: DictConfig, split: str, out_dir: Path) -> list:
    loggers = []
    who = job_identity()
    for spec in (cfg.get("logger") or {}).values():
        if not spec:
            continue
        target = spec.get("_target_", "")
        if target.endswith("CSVLogger"):
            loggers.append(hydra.utils.instantiate(spec, save_dir=str(out_dir), name="csv", version=split))
        elif target.endswith("WandbLogger"):
            loggers.append(_wandb_logger(cfg, spec, split, out_dir, who))
        else:
            loggers.append(hydra.utils.instantiate(spec))
    return loggers


def _wandb_logger(cfg: DictConfig, spec, split: str, out_dir: Path, who: dict):
    offline = wandb_offline(spec, out_dir)
    logger = hydra.utils.instantiate(
        {k: v for k, v in spec.items() if k != "mode"},
        save_dir=str(out_dir),
        name=f"{who['name']}|{split}",
        group=spec.get("group") or _study_group(cfg) or who["group"],
        job_type=spec.get("job_type") or cfg.get("job_type", "train"),
        tags=list(cfg.get("tags") or []) + [split],
        offline=bool(offline),
    )
    run = logger.experiment
    run.config.update(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), allow_val_change=True)
    # The per-epoch curves use the epoch as their x-axis.
    run.define_metric("epoch")
    for prefix in ("train/*", "val/*"):
        run.define_metric(prefix, step_metric="epoch")
    return logger


_said: set[str] = set()


def wandb_offline(spec, out_dir: Path) -> bool:
    """The auto/online/offline decision (``wandb_mode.decide``); offline is said once per job,
    with why and how to upload the runs later."""
    import logging

    from bridgeeval.training.wandb_mode import decide

    offline, reason = decide(spec.get("mode", "auto"), spec.get("offline"))
    if offline and str(out_dir) not in _said:
        _said.add(str(out_dir))
        logging.getLogger("bridgeeval").warning(
            "W&B offline (%s); upload later with `wandb sync %s/wandb/offline-run-*`", reason, out_dir
        )
    return offline


def finish_wandb(loggers: list) -> None:
    """Closes the W&B run of this split, so the next split or job never shares it."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()
