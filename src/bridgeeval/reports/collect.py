"""Finds the finished jobs under run and multirun folders; reports the rest by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Job:
    path: Path
    metrics: dict

    def samples(self, key: str) -> list[float]:
        """The job's values of ``key``: one per fold (k-fold CV) or one (a single split)."""
        folds = self.metrics.get("folds") or []
        values = [float(f[key]) for f in folds if isinstance(f.get(key), (int, float))]
        if not values and isinstance(self.metrics.get(key), (int, float)):
            values = [float(self.metrics[key])]
        return values


def collect_jobs(paths) -> tuple[list[Job], list[str]]:
    """Every job folder (one with ``metrics.json`` or a ``.hydra`` folder) under ``paths``.

    Returns the finished jobs and one line per folder skipped (missing, corrupt or unfinished
    ``metrics.json``), so that one bad job never hides the others.
    """
    jobs, problems = [], []
    for root in map(Path, paths):
        if not root.exists():
            problems.append(f"{root}: no such file or folder, skipped")
            continue
        for folder in _job_folders(root):
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
    path = folder / "metrics.json"
    if (folder / "untrained.json").exists():
        return None, None  # an Experiment 2 run: not part of Table 1
    if not path.is_file():
        return None, f"{folder}: no metrics.json (unfinished, failed or pruned job), skipped"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"{path}: corrupt metrics.json ({type(err).__name__}), skipped"
    if not isinstance(data, dict) or data.get("status") != "finished" or "val/mnno_input_mapped" not in data:
        return None, f"{path}: not a finished training job's metrics, skipped"
    return Job(folder, data), None
