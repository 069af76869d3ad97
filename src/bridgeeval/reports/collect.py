"""Finds the finished jobs under run and multirun folders; reports the rest by name."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridgeeval.errors import BridgeEvalError
from bridgeeval.models.mappers import has_depth
from bridgeeval.records import ITEMS_FILE, METRICS_FILE, JobRecord, check_items, read_items, read_job_record

# Config keys that change a job's results; everything else (seed, fold, paths, loggers, progress
# bars, the sweep's bookkeeping) is a replicate or presentation, and may differ within a cell.
RESULT_KEYS = (
    "dataset.",
    "direction",
    "mapper.",
    "depth",
    "loss.",
    "optimizer.",
    "trainer.max_epochs",
    "trainer.precision",
    "trainer.gradient_clip_val",
    "trainer.accumulate_grad_batches",
    "data.",
    "metrics.k",
    "metrics.neighbors",
    "cv.folds",
    "cv.seed",
    "callbacks.early_stopping.",
)


@dataclass
class Job:
    path: Path
    record: JobRecord
    config: dict | None = None  # the job's .hydra/config.yaml, flattened to dotted keys

    def item_values(self, key: str, pooled: bool = False) -> np.ndarray | None:
        """Per-item values of ``key`` (e.g. ``nno_input_mapped``) over the job's splits, each item
        once per split it was validated in (``pooled``: from the evaluation over the whole set);
        None for jobs written before items were stored."""
        items = self._items
        if not items:
            return None
        if pooled and not self.single_split:
            return items.get(f"pooled.{key}")
        parts = [v for name, v in items.items() if name.endswith(f".{key}") and not name.startswith("pooled.")]
        return np.concatenate(parts) if parts else None

    def split_indices(self) -> dict[str, np.ndarray]:
        """Each split's validation item indices (``<split>.index``), the pooled one left out."""
        return {name: v for name, v in (self._items or {}).items()
                if name.endswith(".index") and not name.startswith("pooled.")}

    @functools.cached_property
    def _items(self) -> dict[str, np.ndarray] | None:
        """``items.npz``, read once per job (every measure and pair of a report reads it) and
        checked against the job's record before any test uses it."""
        items = read_items(self.path)
        return None if items is None else check_items(items, self.record, self.path / ITEMS_FILE)

    @property
    def study(self) -> str | None:
        """The Optuna study whose trial this job ran, if a sweep started it."""
        return (self.config or {}).get("sweep_trial.study_name")

    def settings(self) -> dict:
        """Every result-affecting setting of the job: what a report cell may pool over must agree.
        From the job's config where it has one; the features and the protocol actually used, and
        the content of user files, from ``metrics.json``."""
        r, data = self.record, self.record.data
        out = {
            k: v
            for k, v in (self.config or {}).items()
            if k.startswith(RESULT_KEYS) and k not in ("dataset.input_path", "dataset.target_path")
        }
        if "metrics.neighbors" in out:
            out["metrics.neighbors"] = str(out["metrics.neighbors"]).split(",")[0].strip("[]' ")
        for group in ("mapper", "loss"):  # the variant by its name, whichever version wrote the config
            for key in ("_target_", "kind", "name"):
                out.pop(f"{group}.{key}", None)
        if not has_depth(r.mapper):
            out.pop("depth", None)
        out.update(
            {
                "mapper": r.mapper,
                "loss": r.loss,
                "dataset": r.dataset,
                "protocol": r.protocol,
                "include_self": r.include_self,
                "k": r.k,
                "neighbor_metric": r.neighbor_metric,
                "text_features": data.get("text_features"),
                "image_features": data.get("image_features"),
            }
        )
        out.update({k: v for k, v in data.items() if k.endswith(("_path", "_sha256", "limit"))})
        return {k: v for k, v in out.items() if not k.startswith("features.")}

    @property
    def single_split(self) -> bool:
        """An official train/test split: the test set is already evaluated whole."""
        return self.record.single_split

    def has_pooled(self) -> bool:
        return self.single_split or any(k.startswith("pooled/") for k in self.record.values)

    def samples(self, key: str, pooled: bool = False) -> list[float]:
        """The job's values of ``key``: one per fold (k-fold CV) or one (a single split); with
        ``pooled``, the one value of the out-of-fold predictions evaluated over the whole set."""
        if pooled and not self.single_split:
            value = self.record.values.get(f"pooled/{key.split('/', 1)[-1]}")
            return [float(value)] if isinstance(value, (int, float)) else []
        values = [float(f[key]) for f in self.record.folds if isinstance(f.get(key), (int, float))]
        if not values and isinstance(self.record.values.get(key), (int, float)):
            values = [float(self.record.values[key])]
        return values


def collect_jobs(paths) -> tuple[list[Job], list[str]]:
    """Every job folder (one with ``metrics.json`` or a ``.hydra`` folder) under ``paths``.

    Returns the finished jobs and one line per folder skipped (missing, corrupt or unfinished
    ``metrics.json``), so that one bad job never hides the others.
    """
    jobs, problems, seen = [], [], set()
    for root in map(Path, paths):
        if not root.exists():
            problems.append(f"{root}: no such file or folder, skipped")
            continue
        for folder in _job_folders(root):
            if folder.resolve() in seen:  # a folder passed twice, or inside another path given
                continue
            seen.add(folder.resolve())
            job, problem = _read_job(folder)
            if job:
                jobs.append(job)
            elif problem:
                problems.append(problem)
    return jobs, problems


def _job_folders(root: Path) -> list[Path]:
    if root.is_file():
        return [root.parent]
    found = {p.parent for p in root.rglob("metrics.json")}
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    return sorted(found)


def _read_job(folder: Path) -> tuple[Job | None, str | None]:
    path = folder / METRICS_FILE
    if (folder / "untrained.json").exists():
        return None, None  # an Experiment 2 run: not part of Table 1
    if not path.is_file():
        return None, f"{folder}: {_why_unfinished(folder)}, skipped"
    try:
        record = read_job_record(folder)
    except BridgeEvalError as err:
        return None, f"{err}, skipped"
    if record.status != "finished" or "val/mnno_input_mapped" not in record.values:
        return None, f"{path}: not a finished training job's metrics, skipped"
    return Job(folder, record, _flat_config(folder)), None


def _why_unfinished(folder: Path) -> str:
    try:
        error = json.loads((folder / "error.json").read_text()).get("error")
    except (OSError, ValueError, AttributeError):
        return "no metrics.json (unfinished, failed or pruned job)"
    return f"failed: {str(error).splitlines()[0] if error else '?'}"


def _flat_config(folder: Path) -> dict | None:
    path = folder / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:  # noqa: BLE001 - a damaged config: the job is still reported by its metrics
        return None
    return dict(_flatten(config))


def _flatten(node, prefix: str = ""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], str(node) if isinstance(node, (list, dict)) else node


def best_trials_only(jobs: list[Job]) -> list[Job]:
    """A sweep's jobs reduced to each study's best trial (by the job's ``optimized_metric``, at the
    CV-chosen epoch where the job chose one, as the sweep scored it, and the sweep's direction); jobs
    outside sweeps are kept as they are."""
    by_study: dict[str, list[Job]] = {}
    kept = []
    for job in jobs:
        (by_study.setdefault(job.study, []) if job.study else kept).append(job)
    for trials in by_study.values():
        metric = (trials[0].config or {}).get("optimized_metric") or "val/loss"
        sign = -1.0 if _direction(trials[0].path) == "maximize" else 1.0
        def objective(trial: Job):
            return trial.record.values.get(f"{metric}@best_epoch", trial.record.values.get(metric))

        scored = [t for t in trials if isinstance(objective(t), (int, float))]
        if scored:
            kept.append(min(scored, key=lambda t: sign * objective(t)))
    return kept


def _direction(job_folder: Path) -> str:
    path = job_folder.parent / "multirun.yaml"
    try:
        from omegaconf import OmegaConf

        direction = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.direction")
    except Exception:  # noqa: BLE001 - no multirun.yaml: the sweeps' default
        return "minimize"
    return str(direction or "minimize").lower()


# Overrides that say where and how a job ran, not what it computed.
PLUMBING = ("hydra", "paths.", "sweep_trial.", "trainer.enable_progress")


def job_overrides(job_dir: Path) -> list[str] | None:
    """A job's own command-line overrides (from ``.hydra/overrides.yaml``) without the plumbing;
    None where the file is missing, unreadable or not a list of strings (hand-edited)."""
    import yaml

    try:
        overrides = yaml.safe_load((Path(job_dir) / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        return None
    return [o for o in overrides if not o.startswith(PLUMBING)]
