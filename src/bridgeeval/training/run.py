"""``train(cfg)``: one job of the main task, from a composed config to ``metrics.json``."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from bridgeeval.config.checks import complete_train_config
from bridgeeval.data.datasets import load_paired
from bridgeeval.data.splits import protocol_splits
from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import write_csv_atomic
from bridgeeval.metrics.measures import check_measures_apply
from bridgeeval.models.mappers import depth_problem, mapped_values
from bridgeeval.models.module import MappingModule
from bridgeeval.models.variants import builtin_class, variant_name
from bridgeeval.records import JobRecord, write_job_record
from bridgeeval.tracking import JobLoggers
from bridgeeval.training.callbacks import EpochHistory, EpochMapped
from bridgeeval.training.epochs import best_epoch
from bridgeeval.training.items import ItemRecorder
from bridgeeval.training.trainer import build_trainer, known_harmless_warnings, use_threads

log = logging.getLogger(__name__)
# Lightning's per-Trainer banners (devices, tips) drown the job's own log across many folds.
for _name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class SkippedJob(Exception):
    """A job that would only duplicate another (e.g. ``mapper=lin`` with ``depth=3``)."""


def train(cfg: DictConfig) -> dict:
    """Runs every split of the configured protocol; returns the summary written to ``metrics.json``.

    The summary holds each logged metric averaged over the splits (folds or the one train/test
    split) and, under ``folds``, each split's own values.
    """
    cfg = complete_train_config(cfg)
    out_dir = Path(cfg.paths.output_dir)
    check_config(cfg)
    use_threads(cfg.trainer.threads)  # the Trainer's own setting, from the data's preparation on
    data = load_paired(_plain(cfg.dataset), _plain(cfg.features), cfg.direction)
    if getattr(builtin_class(cfg.loss), "needs_negatives", False):
        check_negatives(data)
    protocol, splits = protocol_splits(
        len(data), data.test_mask, cfg.cv.folds, cfg.cv.fold, cfg.cv.seed, cfg.cv.protocol
    )
    if cfg.cv.select_epoch and protocol == "split":
        raise BridgeEvalError(
            f"cv.select_epoch=true would choose the epochs on data set {data.name!r}'s test split (cv.protocol="
            f"{cfg.cv.protocol} uses its official split); choose on the training items with cv.protocol=train_cv"
        )
    smallest_val = min(len(s.val) for s in splits)
    if cfg.metrics.k >= smallest_val:
        raise BridgeEvalError(
            f"metrics.k={cfg.metrics.k} needs more validation items than the {smallest_val} of the smallest split"
        )
    check_measures_apply(cfg.metrics.measures, _plain(cfg.metrics.measure_options), smallest_val,
                         (data.input.shape[1], data.target.shape[1]), int(cfg.metrics.k))
    log.info("data set %s: %d pairs, %s, %d split(s)", data.name, len(data), protocol, len(splits))

    trial = _sweep_trial(cfg)
    started = time.time()
    results, history = [], []
    items = ItemRecorder(len(data), int(cfg.metrics.k), str(cfg.metrics.neighbors[0]), bool(cfg.metrics.include_self),
                         measures=list(cfg.metrics.measures), measure_options=_plain(cfg.metrics.measure_options))
    with JobLoggers(cfg, out_dir, job_type=f"{cfg.direction}/{variant_name(cfg.mapper)}") as loggers:
        for i, split in enumerate(splits):
            pruning = _pruning(trial, cfg, i) if trial else None
            final, rows = fit_split(cfg, data, split, loggers.for_split(split.name), pruning, items)
            results.append({"split": split.name, **final})
            history += rows
        if cfg.cv.evaluate == "pooled":
            history += items.pooled_curves(torch.from_numpy(data.input), torch.from_numpy(data.target))
        record = _record(cfg, data, protocol, results, items, started, history)
        summary = record.to_json()
        loggers.record(summary, history)
    write_csv_atomic(out_dir / "history.csv", history)
    items.write(out_dir)
    write_job_record(out_dir, record)  # written last: marks a finished job
    say_what_was_found(record, out_dir)
    return summary


def _record(cfg: DictConfig, data, protocol: str, results: list[dict], items, started: float,
            history: list[dict]) -> JobRecord:
    """What ``metrics.json`` holds: the means over splits, the pooled values, the epoch the mean
    validation curve chose, the settings."""
    values = summarise(results)
    values.update(items.pooled(torch.from_numpy(data.input), torch.from_numpy(data.target)) or {})
    values.update(_epoch_choice(cfg, history))
    return JobRecord(
        dataset=data.name,
        n_items=len(data),
        direction=cfg.direction,
        mapper=variant_name(cfg.mapper),
        depth=int(cfg.depth),
        loss=variant_name(cfg.loss),
        mapper_spec=_plain(cfg.mapper),
        loss_spec=_plain(cfg.loss),
        seed=int(cfg.seed),
        k=int(cfg.metrics.k),
        neighbor_metric=str(cfg.metrics.neighbors[0]),
        include_self=bool(cfg.metrics.include_self),
        protocol=protocol,
        evaluate=str(cfg.cv.evaluate),
        values=values,
        folds=results,
        data={k: v for k, v in data.meta.items() if not isinstance(v, list)},
        seconds=time.time() - started,
    )


def say_what_was_found(record: JobRecord, out_dir: Path) -> None:
    """The job's result in three lines at its end: the mNNOs, the paper's finding in words, and
    where the files went (the terminal otherwise ends on progress bars)."""
    stage = record.headline_stage

    def value(key: str) -> str:
        mean, std = record.values.get(key), record.values.get(f"{key}_std")
        if not _finite(mean):
            return "undefined"
        return f"{mean:.3f}" + (f" ± {std:.3f}" if _finite(std) else "")

    x, y, xy = f"{stage}/mnno_input_mapped", f"{stage}/mnno_target_mapped", f"{stage}/mnno_input_target"
    if x not in record.values or y not in record.values:
        return
    log.info(
        "%s, %s, %s%s: mNNO(X,f(X)) %s, mNNO(Y,f(X)) %s, mNNO(X,Y) %s, val/loss %s; %s",
        record.dataset, record.direction, record.mapper,
        " (pooled out-of-fold)" if stage == "pooled" else "",
        value(x), value(y), value(xy), value("val/loss"), _verdict(record.values[x], record.values[y], record.folds),
    )
    log.info("results: %s (metrics.json, history.csv, items.npz, %s)", out_dir,
             "mapped.npy" if (out_dir / "mapped.npy").exists() else "mapped_splits.npz")


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _verdict(to_input, to_target, folds: list[dict]) -> str:
    """Which of X and Y f(X)'s neighbourhoods are closer to, or why that cannot be said."""
    if _finite(to_input) and _finite(to_target):
        return f"f(X)'s neighbourhoods are closer to {'X (the input)' if to_input > to_target else 'Y (the target)'}"
    flat = [f["split"] for f in folds if not _finite(f.get("val/mnno_input_mapped"))]
    where = f" on {', '.join(flat)}" if flat else ""
    return (f"mNNO of f(X) undefined{where}: its neighbours are all tied there (a collapsed map; "
            "undefined_keys in metrics.json), so neither X nor Y is closer")


def _sweep_trial(cfg: DictConfig):
    """The Optuna trial this job runs for, when a sweep started it (optuna is imported only then)."""
    if OmegaConf.select(cfg, "sweep_trial.number") is None:  # sweep_trial: absent in a user's own task config
        return None
    from bridgeeval.sweeps.pruning import job_trial

    return job_trial(cfg.sweep_trial)


def _pruning(trial, cfg: DictConfig, split_index: int):
    from bridgeeval.sweeps.pruning import OptunaPruning

    return OptunaPruning(trial, cfg.optimized_metric, split_index * int(cfg.trainer.max_epochs))


def check_config(cfg: DictConfig) -> None:
    """Jobs that would only repeat another (names and values are checked by ``check_train_config``)."""
    problem = depth_problem(builtin_class(cfg.mapper), int(cfg.depth))
    if problem:
        raise SkippedJob(problem)


def check_negatives(data) -> None:
    """The max-margin loss needs, for some item, another of a different class; with one class
    for all it is 0 everywhere and nothing trains."""
    if data.labels is None:
        return
    labels = np.asarray(data.labels)
    one_class = labels.ndim == 2 and bool(labels.all(axis=0).any()) or labels.ndim == 1 and len(np.unique(labels)) < 2
    if one_class:
        raise BridgeEvalError(
            f"loss=max_margin: every item of data set {data.name!r} shares a class, so no negative exists; "
            "give labels with two or more classes, or use loss=mse/cosine"
        )


def build_module(cfg: DictConfig, data) -> MappingModule:
    """The map of a job's config for ``data``'s widths, seeded by ``cfg.seed``; its groups' configs go
    in as configs, not objects, so that the module saves them and its checkpoints reload alone."""
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    mapper = {**_plain(cfg.mapper), "in_dim": int(data.input.shape[1]), "out_dim": int(data.target.shape[1]),
              "depth": int(cfg.depth)}
    return MappingModule(
        mapper,
        _plain(cfg.loss),
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        k=int(cfg.metrics.k),
        neighbour_metrics=list(cfg.metrics.neighbors),
        include_self=bool(cfg.metrics.include_self),
        on_train=bool(cfg.metrics.on_train),
        retrieval=bool(cfg.metrics.retrieval),
        measures=list(cfg.metrics.measures),
        measure_options=_plain(cfg.metrics.measure_options),
    )


def build_datamodule(cfg: DictConfig, data, split):
    return hydra.utils.instantiate(cfg.data)(data, split, seed=int(cfg.seed))


def fit_split(cfg: DictConfig, data, split, loggers: list, pruning=None, items=None) -> tuple[dict, list[dict]]:
    """One split's training under the job's (complete) config."""
    module = build_module(cfg, data)
    datamodule = build_datamodule(cfg, data, split)
    history = EpochHistory(split.name)
    callbacks = [history] + [hydra.utils.instantiate(c) for c in (cfg.callbacks or {}).values() if c]
    if pruning is not None:
        callbacks.append(pruning)
    if items is not None and cfg.cv.evaluate == "pooled":
        callbacks.append(EpochMapped(items, split.name, split.val))
    if not cfg.trainer.enable_progress_bar:
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    with known_harmless_warnings():
        once = {"max_epochs": 1} if module.closed_form else {}  # solved in one step: epochs would repeat it
        trainer = build_trainer(cfg.trainer, logger=loggers or False, callbacks=callbacks, **once)
        trainer.fit(module, datamodule=datamodule)
    if cfg.checkpoint:
        # Weights, loops and hyperparameters: a map to apply, loadable as data (no optimiser state).
        trainer.save_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / f"{split.name}.ckpt", weights_only=True)
    final = {key: float(value) for key, value in sorted(trainer.callback_metrics.items())}
    final["epochs"] = trainer.current_epoch
    if items is not None:
        x, y = datamodule.arrays("val")
        items.add_split(split.name, split.val, x, y, mapped_values(module.mapper, x))
    return final, history.rows


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def summarise(results: list[dict]) -> dict:
    """Mean of every numeric metric over the splits (and its standard deviation where several)."""
    keys = [k for k in results[0] if k != "split" and all(isinstance(r.get(k), (int, float)) for r in results)]
    summary = {}
    for key in keys:
        values = np.array([r[key] for r in results], dtype=float)
        summary[key] = float(values.mean())
        if len(values) > 1 and not key.startswith("time/"):
            summary[f"{key}_std"] = float(values.std(ddof=1))
    return summary


def _epoch_choice(cfg: DictConfig, history: list[dict]) -> dict:
    """With ``cv.select_epoch``: ``best_epoch``, the budget it was chosen within (``epoch_budget``),
    and each validation value's mean and std over the splits there (``val/loss@best_epoch``,
    ``val/loss_std@best_epoch``, ...)."""
    metric = cfg.optimized_metric
    if not (metric and cfg.cv.select_epoch):
        return {}
    chosen = best_epoch(history, metric, maximize=_sweep_maximizes())
    if chosen is None:
        return {}
    epochs = chosen[0]
    # Every validation value over the splits at that epoch, as after a retrain for `epochs`.
    rows = [{k: v for k, v in row.items() if k == "split" or k.startswith("val/")}
            for row in history if row.get("split") != "pooled" and int(row["epoch"]) == epochs - 1]
    closed_form = getattr(builtin_class(cfg.mapper), "closed_form", False)  # solved once: one epoch
    budget = 1 if closed_form else int(cfg.trainer.max_epochs)
    return {"best_epoch": epochs, "epoch_budget": budget,
            **{f"{key}@best_epoch": value for key, value in summarise(rows).items()}}


def _sweep_maximizes() -> bool:
    """Whether the sweep that runs this job maximises its value (a plain run: minimise, as a loss)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        direction = HydraConfig.get().sweeper.get("direction")
    except (ImportError, ValueError, AttributeError):
        return False
    return str(getattr(direction, "name", direction)).lower() == "maximize"


def optimized_value(summary: dict | None, name: str | None, select_epoch: bool = False) -> float | None:
    """The value a sweeper optimises (at the CV-chosen epoch with ``select_epoch``); NaN where the
    job was skipped or lacks it."""
    if not name:
        return None
    key = f"{name}@best_epoch" if select_epoch else name
    if not summary or key not in summary:
        return math.nan
    return float(summary[key])
