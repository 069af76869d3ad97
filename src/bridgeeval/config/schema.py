"""Typed schemas of the task configs: one dataclass per config group, checked before any work.

The YAML files under ``conf/`` stay plain (Hydra composes them as they are); right after
composition each group is merged into its dataclass with OmegaConf, which converts or refuses
every value by its declared type ("5" -> 5, "abc" for an int -> refused). Keys a schema does not
declare (e.g. Lightning Trainer arguments) pass through to their ``_target_`` unchecked. The mapper
and the loss have no schema: their classes check their own settings (``models.variants``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# OmegaConf reads these annotations at run time: typing.Optional, not ``X | None``.


@dataclass
class DatasetSchema:
    name: str = "imagenet1k"
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
    lr: float = 0.001


@dataclass
class TrainerSchema:
    max_epochs: int = 30
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 1
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    threads: Optional[int] = 2


@dataclass
class MetricsSchema:
    k: int = 10
    neighbors: list[str] = field(default_factory=lambda: ["cosine"])
    include_self: bool = False
    on_train: bool = False
    measures: list[str] = field(default_factory=lambda: ["mnno"])
    measure_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CVSchema:
    protocol: str = "auto"
    evaluate: str = "fold"
    folds: int = 5
    fold: Optional[int] = None
    seed: int = 0


@dataclass
class DataSchema:
    batch_size: int = 64


@dataclass
class TrainSchema:
    """The top-level keys of ``conf/train.yaml``."""

    seed: int = 0
    depth: int = 1
    direction: str = "text2image"
    optimized_metric: Optional[str] = "val/loss"
    checkpoint: bool = False
    overwrite: bool = False


@dataclass
class MapSchema:
    output_dim: int = 2048
    hidden_units: int = 2048
    init_range: float = 0.05


@dataclass
class UntrainedSchema:
    """The keys of ``conf/untrained.yaml``."""

    seed: int = 0
    draws: int = 10
    mappings: list[str] = field(default_factory=lambda: ["nn", "lin", "none"])
    similarities: list[str] = field(default_factory=lambda: ["cosine", "euclidean"])
    min_pairs: int = 10
    alpha: float = 0.05
    measures: list[str] = field(default_factory=lambda: ["mnno", "cka", "cknna", "rsa"])
    k: int = 10
    measure_options: dict[str, Any] = field(default_factory=dict)
    embeddings: dict[str, Optional[str]] = field(default_factory=dict)
    benchmarks: dict[str, Optional[str]] = field(default_factory=dict)
    overwrite: bool = False


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
