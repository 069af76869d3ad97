"""Samplers and pruners: each a ``{"_target_": "optuna.X", args...}`` config, the form of the
config groups ``hydra/sweeper/sampler`` and ``hydra/sweeper/pruner``."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import optuna

from bridgeeval.errors import BridgeEvalError

SAMPLER_GROUP = "hydra/sweeper/sampler=tpe|random|cmaes|nsgaii|qmc|gp|grid"
PRUNER_GROUP = "hydra/sweeper/pruner=none|median|percentile|hyperband|successive_halving|threshold"


def sampler_spec(sampler: Any) -> dict:
    """The sampler config, refused unless it is a mapping with a ``_target_``."""
    return _spec("sampler", sampler, SAMPLER_GROUP)


def is_grid(spec: dict) -> bool:
    return spec["_target_"].rsplit(".", 1)[-1] == "GridSampler"


def build_sampler(spec: dict, seed: int | None) -> optuna.samplers.BaseSampler:
    """The configured sampler with ``seed``; the grid runs from the study's queue of enqueued
    points instead of Optuna's GridSampler (its random order cannot be shared between workers)."""
    if is_grid(spec):
        return optuna.samplers.RandomSampler(seed=seed)  # only used for the queue's fixed params
    return _build("sampler", spec, {"seed": seed})


def build_pruner(spec: Any) -> optuna.pruners.BasePruner:
    """The configured pruner; ``None`` (no pruner configured) prunes nothing."""
    if spec is None:
        return optuna.pruners.NopPruner()
    return _build("pruner", _spec("pruner", spec, PRUNER_GROUP), {})


def _spec(role: str, spec: Any, group: str) -> dict:
    if not isinstance(spec, dict) or not spec.get("_target_"):
        raise BridgeEvalError(
            f"hydra.sweeper.{role}={spec!r}: choose the {role} by its config group, {group}, "
            f"then set its arguments as hydra.sweeper.{role}.NAME=VALUE"
        )
    return dict(spec)


def _build(role: str, spec: dict, extra: dict):
    """``spec``'s class with its non-null arguments (null: Optuna's default) and those of ``extra``
    the class takes; an argument this Optuna does not take is named."""
    target = spec["_target_"]
    cls = _import_class(target)
    accepted = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in spec.items() if k != "_target_" and k not in extra and v is not None}
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise BridgeEvalError(
            f"{role} {target}: Optuna {optuna.__version__} does not take {', '.join(unknown)}; "
            f"it takes {', '.join(accepted) or 'no arguments'}"
        )
    kwargs.update({k: v for k, v in extra.items() if k in accepted})
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise BridgeEvalError(f"{role} {target}: {err}") from None


def _import_class(target: str):
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        if name == "MOTPESampler":
            raise BridgeEvalError(
                "sampler motpe: MOTPESampler was removed in Optuna 4.0; use hydra/sweeper/sampler=tpe "
                "(TPESampler handles several objectives) or nsgaii"
            ) from None
        raise BridgeEvalError(f"cannot import {target}") from None
