"""What a finished training job leaves: ``metrics.json`` (a versioned :class:`JobRecord`) and
``items.npz`` (per-item values). Training writes both through this module; reports, Table 1, the
multirun table, the sweeper and ``reproduce`` read them through it, never by raw JSON keys.

``metrics.json`` is one flat JSON object (so ``jq '."val/loss"'`` works): ``schema``, every logged
number (means over the splits, their ``_std``, ``pooled/...``), the settings that produced them
and, under ``folds``, each split's own numbers. A file without ``schema`` was written before
records were versioned and has the layout of version 1.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import write_json_atomic

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
ITEMS_FILE = "items.npz"
# The out-of-fold f(X) of every item in the data's row order (folds covering the set), else each
# split's f(X) with its item indices: the evidence behind the printed values.
MAPPED_FILE, MAPPED_SPLITS_FILE = "mapped.npy", "mapped_splits.npz"
_READS = (1,)


@dataclass
class JobRecord:
    """One finished training job: its numbers and the settings that produced them."""

    dataset: str
    n_items: int
    direction: str
    mapper: str  # the variant's short name (nn, lin); mapper_spec is what built it
    depth: int
    loss: str
    seed: int
    k: int
    neighbor_metric: str  # the first of metrics.neighbors: the one of the unsuffixed values
    include_self: bool
    protocol: str  # kfold | split | train_cv (the protocol actually used)
    evaluate: str = "fold"  # fold | pooled (which values the job's headline is)
    values: dict[str, float | None] = field(default_factory=dict)  # "val/loss", "pooled/...", "..._std"
    folds: list[dict] = field(default_factory=list)  # each split's values, with "split"
    data: dict[str, Any] = field(default_factory=dict)  # the data set's provenance (features, paths, sha256)
    seconds: float = 0.0
    mapper_spec: dict[str, Any] = field(default_factory=dict)  # the mapper's _target_ and its arguments
    loss_spec: dict[str, Any] = field(default_factory=dict)
    status: str = "finished"
    schema: int = SCHEMA_VERSION

    @property
    def headline_stage(self) -> str:
        """``pooled`` where the job evaluated that way and has pooled values, else ``val``."""
        return "pooled" if self.evaluate == "pooled" and "pooled/mnno_input_mapped" in self.values else "val"

    def headline(self, key: str) -> float | None:
        """``key`` (e.g. ``mnno_input_mapped``) of the job's headline stage."""
        return self.values.get(f"{self.headline_stage}/{key}")

    @property
    def single_split(self) -> bool:
        """An official train/test split: the test set is already evaluated whole."""
        return self.protocol == "split"

    def to_json(self) -> dict:
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values, folds = settings.pop("values"), settings.pop("folds")
        schema, status = settings.pop("schema"), settings.pop("status")
        return {"schema": schema, **values, "status": status, **settings, "folds": folds}

    @classmethod
    def from_json(cls, raw: Any, source: str = METRICS_FILE) -> JobRecord:
        """The record of a parsed ``metrics.json``; anything else is one line naming ``source``."""
        if not isinstance(raw, dict):
            raise BridgeEvalError(f"{source}: not a job record (a JSON object is expected)")
        version = raw.get("schema", 1)
        if version not in _READS:
            raise BridgeEvalError(
                f"{source}: job record schema {version!r}, but this bridgeeval reads schema "
                f"{', '.join(map(str, _READS))} (written by a newer bridgeeval? upgrade it)"
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"values"}
        missing = sorted(n for n in names if n not in raw and n not in _OPTIONAL)
        if missing:
            raise BridgeEvalError(f"{source}: not a training job's record (no {', '.join(missing)})")
        _check_types(raw, source)
        values = {k: v for k, v in raw.items() if k not in names and k != "undefined_keys" and _is_number(v)}
        return cls(**{n: raw[n] for n in names if n in raw}, values=values)


_OPTIONAL = {"schema", "evaluate", "data", "seconds", "folds", "status", "mapper_spec", "loss_spec"}
# The type each field must have (a hand-edited "folds": "oops" would otherwise be a traceback later).
_TYPES = {"dataset": str, "n_items": int, "direction": str, "mapper": str, "depth": int, "loss": str, "seed": int,
          "k": int, "neighbor_metric": str, "include_self": bool, "protocol": str, "evaluate": str, "data": dict,
          "folds": list, "seconds": (int, float), "status": str, "mapper_spec": dict, "loss_spec": dict}


def _check_types(raw: dict, source: str) -> None:
    """Each field of its type, each split a mapping, and no number that strict JSON cannot hold
    (bridgeeval writes an undefined value as null; a NaN is a hand-made file's)."""
    for name, kind in _TYPES.items():
        value = raw.get(name)
        if name in raw and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise BridgeEvalError(f"{source}: field {name!r} is {json.dumps(value)[:40]}, not {_type_name(kind)}")
    for i, split in enumerate(raw.get("folds", [])):
        if not isinstance(split, dict):
            raise BridgeEvalError(f"{source}: folds[{i}] is {json.dumps(split)[:40]}, not an object of values")
    for where, mapping in [("", raw)] + [(f"folds[{i}].", f) for i, f in enumerate(raw.get("folds", []))]:
        for key, value in mapping.items():
            if isinstance(value, float) and not np.isfinite(value):
                raise BridgeEvalError(f"{source}: {where}{key} is {value}, which strict JSON cannot hold; "
                                      "write null for an undefined value")


def _type_name(kind) -> str:
    names = {str: "a string", int: "a whole number", bool: "true or false", dict: "an object", list: "a list"}
    return names.get(kind, "a number")


def _is_number(value: Any) -> bool:
    return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)


def write_job_record(folder: Path, record: JobRecord) -> Path:
    """``metrics.json`` in ``folder``, atomically (its presence marks a finished job)."""
    return write_json_atomic(Path(folder) / METRICS_FILE, record.to_json())


def read_job_record(folder: Path) -> JobRecord:
    """The job record in ``folder``: one line naming the file when it is missing or unreadable."""
    path = Path(folder) / METRICS_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BridgeEvalError(f"{path}: no such file (unfinished, failed or pruned job)") from None
    except (OSError, ValueError) as err:
        raise BridgeEvalError(f"{path}: corrupt {METRICS_FILE} ({type(err).__name__})") from None
    return JobRecord.from_json(raw, str(path))


def try_read_job_record(folder: Path) -> JobRecord | None:
    """The record, or None where there is none to read (the caller reports the folder its way)."""
    try:
        return read_job_record(folder)
    except BridgeEvalError:
        return None


def read_items(folder: Path) -> dict[str, np.ndarray] | None:
    """``items.npz`` of a job folder (None for jobs written before items were stored); one line
    naming the file where it is there but unreadable, rather than a report quietly without the
    tests over items."""
    path = Path(folder) / ITEMS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise BridgeEvalError(
            f"{path}: corrupt {ITEMS_FILE} ({type(err).__name__}); rerun the job, or delete the file "
            "to report it without the tests over items"
        ) from None


def check_items(items: dict[str, np.ndarray], record: JobRecord, path: Path) -> dict[str, np.ndarray]:
    """``items`` if they are the per-item values of ``record``: each split's arrays as long as its
    index, the index within the job's items and each item once, and each per-item mean equal to
    the value ``metrics.json`` recorded (a zeroed or shortened fold would otherwise give a report
    whose means come from one file and whose tests from another). One line naming the file else."""
    def refuse(why: str) -> None:
        raise BridgeEvalError(f"{path}: does not match {METRICS_FILE} ({why}); rerun the job, or delete "
                              "the file to report it without the tests over items")

    recorded = {f"{f.get('split')}.{key[len('val/m'):]}": f.get(key) for f in record.folds
                for key in f if key.startswith("val/mnno_")}
    recorded.update({f"pooled.{key[len('pooled/m'):]}": value for key, value in record.values.items()
                     if key.startswith("pooled/mnno_")})
    for name, values in items.items():
        split, _, key = name.partition(".")
        if key == "index":
            if values.ndim != 1 or len(np.unique(values)) != len(values) or (
                    len(values) and (values.min() < 0 or values.max() >= record.n_items)):
                refuse(f"{name} is not a list of distinct items of the {record.n_items}")
            continue
        index = items.get(f"{split}.index")
        expected = len(index) if index is not None else record.n_items
        if values.ndim != 1 or len(values) != expected:
            refuse(f"{name} has {values.size} values for {expected} items")
        value = recorded.get(name)  # logged through float32: equal to ~1e-8
        if isinstance(value, (int, float)) and not np.isclose(float(values.mean()), value, rtol=0, atol=1e-6):
            refuse(f"the mean of {name} is {float(values.mean()):.6g}, the record says {value:.6g}")
    return items
