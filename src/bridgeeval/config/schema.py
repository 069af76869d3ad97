"""Typed schemas of the task configs: one dataclass per config group, checked before any work.

The YAML files under ``conf/`` are the one home of every value (a schema declares types only,
and ``None`` for keys whose absence means none); right after composition each group is merged
into its dataclass with OmegaConf, which converts or refuses every value by its declared type ("5" -> 5, "abc" for an int -> refused). Keys a schema does not
declare (e.g. Lightning Trainer arguments) pass through to their ``_target_`` unchecked. The mapper
and the loss have no schema: their classes check their own settings (``models.variants``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

# OmegaConf reads these annotations at run time: typing.Optional, not ``X | None``.


@dataclass
class DatasetSchema:
    name: str
    # Keys of user files (dataset=custom): absent from the built-in sets' files, where they mean none.
    limit: Optional[int] = None
    input_path: Optional[str] = None
    target_path: Optional[str] = None
    labels: Optional[str] = None
    test_path: Optional[str] = None
    id_column: Optional[bool] = None


@dataclass
class FeaturesSchema:
    text: Optional[str] = None
    image: Optional[str] = None


@dataclass
class OptimizerSchema:
    lr: float


@dataclass
class TrainerSchema:
    max_epochs: int
    check_val_every_n_epoch: int
    log_every_n_steps: int
    num_sanity_val_steps: int
    enable_progress_bar: bool
    threads: Optional[int]


@dataclass
class MetricsSchema:
    k: int
    neighbors: list[str]
    include_self: bool
    on_train: bool
    retrieval: bool
    measures: list[str]
    measure_options: dict[str, Any]


@dataclass
class CVSchema:
    protocol: str
    evaluate: str
    folds: int
    fold: Optional[int]
    seed: int
    select_epoch: bool


@dataclass
class DataSchema:
    batch_size: int


@dataclass
class TrainSchema:
    """The top-level keys of ``conf/train.yaml``."""

    seed: int
    depth: int
    direction: str
    optimized_metric: Optional[str]
    checkpoint: bool
    overwrite: bool


@dataclass
class MapSchema:
    output_dim: int
    hidden_units: int
    init_range: float


@dataclass
class UntrainedSchema:
    """The keys of ``conf/untrained.yaml``."""

    seed: int
    draws: int
    mappings: list[str]
    similarities: list[str]
    min_pairs: int
    alpha: float
    measures: list[str]
    k: int
    measure_options: dict[str, Any]
    embeddings: dict[str, Optional[str]]
    benchmarks: dict[str, Optional[str]]
    overwrite: bool


# config path ("" = top level) -> schema, for each task.
TRAIN_SCHEMAS: dict[str, Any] = {
    "": TrainSchema,
    "dataset": DatasetSchema,
    "features": FeaturesSchema,
    "optimizer": OptimizerSchema,
    "trainer": TrainerSchema,
    "metrics": MetricsSchema,
    "cv": CVSchema,
    "data": DataSchema,
}
UNTRAINED_SCHEMAS: dict[str, Any] = {"": UntrainedSchema, "map": MapSchema}
