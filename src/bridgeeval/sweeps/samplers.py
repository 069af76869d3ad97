"""Samplers and pruners by name."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import optuna

from bridgeeval.errors import BridgeEvalError

# The sampler config group's names (hydra/sweeper/sampler=NAME) and a plain name's Optuna class.
SAMPLER_TARGETS = {
    "grid": "optuna.samplers.GridSampler",
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
    "gp": "optuna.samplers.GPSampler",
}
SAMPLERS = tuple(SAMPLER_TARGETS)


def sampler_spec(sampler: Any) -> dict:
    """A sampler as a ``{"_target_": ..., args}`` mapping, from that mapping or a plain name."""
    if isinstance(sampler, str):
        if sampler not in SAMPLER_TARGETS:
            raise BridgeEvalError(f"sampler: unknown {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        return {"_target_": SAMPLER_TARGETS[sampler]}
    if not isinstance(sampler, dict) or not sampler.get("_target_"):
        raise BridgeEvalError(f"sampler: expected a name or a config with _target_, got {sampler!r}")
    return dict(sampler)


def is_grid(spec: dict) -> bool:
    return spec["_target_"].rsplit(".", 1)[-1] == "GridSampler"


def build_sampler(spec: dict, seed: int | None) -> optuna.samplers.BaseSampler:
    """The configured sampler with ``seed``; the grid runs from the study's queue of enqueued
    points instead of Optuna's GridSampler (its random order cannot be shared between workers)."""
    if is_grid(spec):
        return optuna.samplers.RandomSampler(seed=seed)  # only used for the queue's fixed params
    target = spec["_target_"]
    cls = _import_class(target)
    accepted = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in spec.items() if k not in ("_target_", "seed") and v is not None}
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise BridgeEvalError(
            f"sampler {target}: Optuna {optuna.__version__} does not take {', '.join(unknown)}; "
            f"it takes {', '.join(accepted)}"
        )
    if "seed" in accepted:
        kwargs["seed"] = seed
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise BridgeEvalError(f"sampler {target}: {err}") from None


def _import_class(target: str):
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        if name == "MOTPESampler":
            raise BridgeEvalError(
                "sampler motpe: MOTPESampler was removed in Optuna 4.0; use hydra/sweeper/sampler=tpe "
                "(TPESampler handles several objectives) or nsgaii"
            ) from None
        raise BridgeEvalError(f"sampler: cannot import {target}") from None


def build_pruner(spec: Any) -> optuna.pruners.BasePruner:
    """``None``/``"none"``: no pruning; ``"median"``/``"percentile"``/``"hyperband"``/``"successive_halving"``;
    or a mapping with ``name`` and that pruner's keyword arguments."""
    if spec is None or spec == "none":
        return optuna.pruners.NopPruner()
    if isinstance(spec, dict) and spec.get("_target_"):  # the stock plugin's form
        cls = _import_class(spec["_target_"])
        try:
            return cls(**{k: v for k, v in spec.items() if k != "_target_"})
        except TypeError as err:
            raise BridgeEvalError(f"pruner {spec['_target_']}: {err}") from None
    kwargs: dict = {}
    if isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        spec = spec.get("name")
    pruners = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "threshold": optuna.pruners.ThresholdPruner,
    }
    if spec not in pruners:
        raise BridgeEvalError(f"pruner: unknown {spec!r}; choose none or one of {', '.join(pruners)}")
    if spec == "median" and not kwargs:
        kwargs = {"n_startup_trials": 5, "n_warmup_steps": 2}  # a few full curves before judging
    try:
        return pruners[spec](**kwargs)
    except TypeError as err:
        raise BridgeEvalError(f"pruner {spec}: {err}") from None
