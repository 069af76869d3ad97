"""Config checks run before any training and before anything is written.

``check_train_config`` / ``check_untrained_config`` first give every declared key its type (the
schemas in ``schema.py``), then check what a type cannot say (ranges, known names). Every problem
is one :class:`BridgeEvalError` line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, fields

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from bridgeeval.config.schema import TRAIN_SCHEMAS, UNTRAINED_SCHEMAS
from bridgeeval.errors import BridgeEvalError

SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range


def check_train_config(cfg: DictConfig) -> DictConfig:
    """The typed train config (a plain DictConfig of the declared keys), or one-line error."""
    from bridgeeval.data.datasets import DATASETS, chosen_features, known_datasets
    from bridgeeval.data.paired import DIRECTIONS
    from bridgeeval.data.splits import EVALUATIONS, PROTOCOLS
    from bridgeeval.metrics.validation import METRICS
    _groups_present(cfg)
    t = typed(cfg, TRAIN_SCHEMAS)
    _in_range("seed", t.seed, 0, SEED_MAX)
    _in_range("depth", t.depth, 1)
    _one_of("direction", t.direction, DIRECTIONS)
    _one_of("dataset.name", t.dataset.name, known_datasets())
    if t.dataset.name in DATASETS:
        chosen_features(t.dataset.name, {"text": t.features.text, "image": t.features.image})
    if t.dataset.limit is not None:
        _in_range("dataset.limit", t.dataset.limit, 2)
    for group in ("mapper", "loss"):  # each class checks its own settings
        _variant(cfg, group)
    _positive("optimizer.lr", t.optimizer.lr)
    _in_range("trainer.max_epochs", t.trainer.max_epochs, 1)
    _in_range("trainer.check_val_every_n_epoch", t.trainer.check_val_every_n_epoch, 1)
    _in_range("trainer.log_every_n_steps", t.trainer.log_every_n_steps, 1)
    if t.trainer.threads is not None:
        _in_range("trainer.threads", t.trainer.threads, 1)
    _in_range("metrics.k", t.metrics.k, 1)
    _names("metrics.neighbors", list(t.metrics.neighbors), METRICS)
    _measures("metrics", t.metrics.measures, t.metrics.measure_options)
    _one_of("cv.protocol", t.cv.protocol, PROTOCOLS)
    _one_of("cv.evaluate", t.cv.evaluate, EVALUATIONS)
    _in_range("cv.folds", t.cv.folds, 2)
    if t.cv.fold is not None:
        _in_range("cv.fold", t.cv.fold, 0, t.cv.folds - 1, why=f"one of the cv.folds={t.cv.folds} folds, 0-based")
    _in_range("cv.seed", t.cv.seed, 0, SEED_MAX)
    _in_range("data.batch_size", t.data.batch_size, 1)
    return t


# The parts a training job builds from: each present, and a ``_target_`` where one is built
# (``~optimizer`` would leave the schema's bare defaults, "'DictConfig' object is not callable").
_BUILT = {"mapper": "mapper=nn or mapper=lin", "loss": "loss=mse, cosine or max_margin",
          "optimizer": "optimizer=rmsprop or adam", "trainer": "trainer=default, cpu, gpu or ddp",
          "data": "the data: node of conf/train.yaml"}
_PRESENT = {"paths": "paths=default", "callbacks": "callbacks=default or callbacks=none"}


def _groups_present(cfg: DictConfig) -> None:
    for key, how in {**_BUILT, **_PRESENT}.items():
        node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if not isinstance(node, DictConfig) or (key in _BUILT and "_target_" not in node):
            raise BridgeEvalError(f"{key}: missing from the config (removed with ~{key}?); choose one: {how}")


def complete_train_config(cfg: DictConfig) -> DictConfig:
    """The composed config checked, its declared values typed ("5" -> 5) and the schemas' defaults
    filled in where a key is absent: the one config a job reads, with no defaults in code."""
    t = check_train_config(cfg)
    complete = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # open: defaults may add keys
    return OmegaConf.merge(complete, t)


def _measures(prefix: str, names, options) -> None:
    """Known measure names, and options of the right type, each named with its key."""
    from bridgeeval.metrics.measures import MEASURES, check_measure_options

    dot = f"{prefix}." if prefix else ""
    _names(f"{dot}measures", list(names), tuple(MEASURES))
    try:
        check_measure_options(OmegaConf.to_container(options) if isinstance(options, DictConfig) else options)
    except BridgeEvalError as err:
        raise BridgeEvalError(f"{dot}measure_options.{err}") from None


def _variant(cfg: DictConfig, group: str) -> None:
    from bridgeeval.models.variants import check_arguments

    node = OmegaConf.select(cfg, group)
    try:
        plain = OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as err:
        raise BridgeEvalError(f"{group}: {_first_line(err)}") from None
    check_arguments(group, plain)


def check_untrained_config(cfg: DictConfig) -> DictConfig:
    from bridgeeval.metrics.validation import METRICS
    from bridgeeval.models.mappers import UNTRAINED_MAPPINGS

    t = typed(cfg, UNTRAINED_SCHEMAS)
    _in_range("seed", t.seed, 0, SEED_MAX - max(t.draws, 0))
    _in_range("draws", t.draws, 1)
    _names("mappings", list(t.mappings), UNTRAINED_MAPPINGS)
    _names("similarities", list(t.similarities), METRICS)
    _in_range("min_pairs", t.min_pairs, 3, why="Spearman's rho needs at least 3 pairs")
    _fraction("alpha", t.alpha, lower_open=True, upper_open=True)
    _in_range("map.output_dim", t.map.output_dim, 1)
    _in_range("map.hidden_units", t.map.hidden_units, 1)
    _positive("map.init_range", t.map.init_range)
    _in_range("k", t.k, 1)
    if t.measures:
        _measures("", t.measures, t.measure_options)
    if not t.embeddings:
        raise BridgeEvalError("embeddings: empty; name at least one (e.g. embeddings.glove50=null)")
    return t


def check_task_config(cfg: DictConfig) -> DictConfig:
    """Either task's checks, told apart by the keys only Experiment 2 has."""
    return check_untrained_config(cfg) if "embeddings" in cfg else check_train_config(cfg)


def typed(cfg: DictConfig, schemas: dict[str, type]) -> DictConfig:
    """Each config group's declared keys converted to their schema's types, key by key, so that
    the first wrong value is named exactly. A key with no value in the YAML (removed with ``~``)
    is required, except where the schema says its absence means none."""
    result = {}
    for path, schema in schemas.items():
        node = OmegaConf.select(cfg, path) if path else cfg
        target = OmegaConf.structured(schema)
        hints = typing.get_type_hints(schema)
        for f in fields(schema):
            key = f"{path}.{f.name}" if path else f.name
            if not isinstance(node, DictConfig) or f.name not in node.keys():
                if f.default is MISSING:
                    raise BridgeEvalError(f"{key} is required: give {key}=... (removed with ~{key}?)")
                continue
            if OmegaConf.is_missing(node, f.name):
                raise BridgeEvalError(f"{key} is required: give {key}=...")
            try:
                value = node[f.name]
            except MissingMandatoryValue:
                raise BridgeEvalError(f"{key} is required: give {key}=...") from None
            except OmegaConfBaseException as err:
                raise BridgeEvalError(f"{key}: {_first_line(err)}") from None
            try:
                target[f.name] = value
            except OmegaConfBaseException:
                raise BridgeEvalError(f"{key}={_show(value)}: expected {_describe(hints[f.name])}") from None
        if path:
            result[path] = target
        else:
            result.update({k: target[k] for k in target})
    return OmegaConf.create(result)


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return f"{_describe(inner)} or null"
    if origin is list:
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s"
    if origin is dict:
        return "a mapping of names to values"
    return {int: "an integer", float: "a number", bool: "a boolean (true or false)", str: "a string"}.get(
        hint, str(hint)
    )


def _show(value) -> str:
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        return str(OmegaConf.to_container(value))
    return repr(value) if isinstance(value, str) else str(value)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _in_range(key: str, value: int, low: int, high: int | None = None, why: str | None = None) -> None:
    if value < low or (high is not None and value > high):
        allowed = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise BridgeEvalError(f"{key}={value}: must be {allowed}" + (f" ({why})" if why else ""))


def _positive(key: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise BridgeEvalError(f"{key}={value}: must be a positive, finite number")


def _fraction(key: str, value: float, lower_open: bool = False, upper_open: bool = False) -> None:
    ok = math.isfinite(value) and (value > 0 if lower_open else value >= 0) and (value < 1 if upper_open else value <= 1)
    if not ok:
        interval = f"{'(' if lower_open else '['}0, 1{')' if upper_open else ']'}"
        raise BridgeEvalError(f"{key}={value}: must be in {interval}")


def _one_of(key: str, value: str, allowed) -> None:
    if value not in allowed:
        raise BridgeEvalError(f"{key}={value!r}: unknown; choose one of {', '.join(allowed)}")


def _names(key: str, values: list[str], allowed) -> None:
    if not values:
        raise BridgeEvalError(f"{key}=[]: name at least one of {', '.join(allowed)}")
    for value in values:
        if value not in allowed:
            raise BridgeEvalError(f"{key}: unknown {value!r}; choose from {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise BridgeEvalError(f"{key}={values}: a name is repeated")
