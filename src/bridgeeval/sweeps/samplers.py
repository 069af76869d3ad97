"""Samplers and pruners by name."""

from __future__ import annotations

from typing import Any

import optuna

from bridgeeval.errors import BridgeEvalError

SAMPLERS = ("grid", "tpe", "random", "cmaes", "qmc")


def build_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The grid runs from the study's queue of enqueued points; others sample as Optuna does."""
    if name == "grid":
        return optuna.samplers.RandomSampler(seed=seed)  # only used for the queue's fixed params
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise BridgeEvalError(f"sampler: unknown {name!r}; choose one of {', '.join(SAMPLERS)}")


def build_pruner(spec: Any) -> optuna.pruners.BasePruner:
    """``None``/``"none"``: no pruning; ``"median"``/``"percentile"``/``"hyperband"``/``"successive_halving"``;
    or a mapping with ``name`` and that pruner's keyword arguments."""
    if spec is None or spec == "none":
        return optuna.pruners.NopPruner()
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
