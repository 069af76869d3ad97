"""The search space in the stock Hydra Optuna sweeper's syntax, as Optuna distributions.

``choice(a,b,...)``, ``range(start,stop[,step])``, ``interval(low,high)``,
``tag(log, interval(low,high))`` and ``int(interval(low,high))``; a plain value is fixed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from bridgeeval.errors import BridgeEvalError


@dataclass(frozen=True)
class Param:
    """One searched key: its Optuna distribution and, when discrete, its values in order."""

    name: str
    distribution: BaseDistribution
    values: tuple | None

    def suggest(self, trial: optuna.Trial) -> Any:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(self.name, d.choices)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(self.name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log)


def parse_space(params: Mapping[str, Any] | None, arguments: list[str] = ()) -> tuple[dict[str, Param], list[str]]:
    """Searched params from the sweeper's ``params`` and sweep-like command-line arguments.

    Returns the params and the fixed overrides (plain ``key=value`` arguments) every trial gets.
    """
    parser = OverridesParser.create()
    texts = [f"{key}={value}" for key, value in (params or {}).items()]
    try:
        overrides = parser.parse_overrides(texts) + parser.parse_overrides(list(arguments))
    except HydraException as err:
        raise BridgeEvalError(f"sweep params: {err}") from None
    space, fixed = {}, {}
    for override in overrides:
        if override.is_sweep_override():
            param = param_from_override(override)
            space[param.name] = param
        else:
            fixed[override.get_key_element()] = override.input_line
    for key in fixed:  # as the stock plugin: a value fixed on the command line leaves the search space
        space.pop(key, None)
    return space, list(fixed.values())


def param_from_override(override: Override) -> Param:
    """The override's Optuna distribution; bounds Optuna refuses (``interval(1,0)``, a log scale
    from 0) are one line naming the param."""
    try:
        return _param(override)
    except ValueError as err:
        if isinstance(err, BridgeEvalError):
            raise
        raise BridgeEvalError(f"sweep params: {override.get_key_element()}: {override.input_line.split('=', 1)[-1]}: "
                              f"{err}".replace("`", "")) from None


def _param(override: Override) -> Param:
    name = override.get_key_element()
    value = override.value()
    if isinstance(value, ChoiceSweep) or override.is_discrete_sweep() and not isinstance(value, RangeSweep):
        choices = tuple(_encode(v) for v in override.sweep_iterator())
        return Param(name, CategoricalDistribution(choices), choices)
    if isinstance(value, RangeSweep):
        values = tuple(_encode(v) for v in override.sweep_iterator())
        if not values:
            raise BridgeEvalError(f"sweep params: {name}: empty range")
        if value.shuffle:  # the stock plugin: shuffle(range(...)) is a choice among its values
            return Param(name, CategoricalDistribution(values), values)
        # As the stock plugin: the distribution runs from start to stop inclusive (Optuna's
        # bounds), while the grid takes Hydra's values (stop excluded).
        step = value.step
        if all(isinstance(v, int) for v in (value.start, value.stop, step)):
            return Param(name, IntDistribution(int(value.start), int(value.stop), step=int(step)), values)
        return Param(name, FloatDistribution(float(value.start), float(value.stop), step=float(step)), values)
    if isinstance(value, IntervalSweep):
        log = "log" in (value.tags or set())
        if isinstance(value.start, int) and isinstance(value.end, int):
            return Param(name, IntDistribution(value.start, value.end, log=log), None)
        return Param(name, FloatDistribution(float(value.start), float(value.end), log=log), None)
    raise BridgeEvalError(f"sweep params: {name}: unsupported sweep {override.input_line!r}")


def _encode(value: Any) -> Any:
    """Optuna's categorical choices must be None, bool, int, float or str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    from hydra.core.override_parser.types import Transformer

    return Transformer.encode(value)


def grid_points(space: Mapping[str, Param]) -> list[dict[str, Any]]:
    """Every combination of the discrete params, in a fixed order."""
    continuous = [p.name for p in space.values() if p.values is None]
    if continuous:
        raise BridgeEvalError(
            f"sampler=grid needs discrete params (choice or range); continuous: {', '.join(continuous)}"
        )
    names = list(space)
    return [dict(zip(names, combo)) for combo in itertools.product(*(space[n].values for n in names))]


def as_override(name: str, value: Any) -> str:
    if value is None:
        return f"{name}=null"
    if isinstance(value, bool):
        return f"{name}={str(value).lower()}"
    return f"{name}={value}"


def space_signature(space: Mapping[str, Param]) -> dict[str, str]:
    """The space as JSON-ready text, one Optuna distribution per param (what a study stores)."""
    from optuna.distributions import distribution_to_json

    return {name: distribution_to_json(param.distribution) for name, param in sorted(space.items())}


def describe_space(signature: Mapping[str, str]) -> str:
    """``optimizer.lr: choice(0.01, 0.001), mapper.dropout: interval(0.0, 0.5)`` from a signature."""
    from optuna.distributions import json_to_distribution

    parts = []
    for name, text in signature.items():
        d = json_to_distribution(text)
        if isinstance(d, CategoricalDistribution):
            parts.append(f"{name}: choice({', '.join(map(str, d.choices))})")
        else:
            kind = "int " if isinstance(d, IntDistribution) else ""
            extra = " log" if d.log else (f" step {d.step}" if d.step else "")
            parts.append(f"{name}: {kind}interval({d.low}, {d.high}){extra}")
    return ", ".join(parts) or "no params"
