"""What a plain multirun found, in one table at its end (each job also ends with its own lines,
but they scroll away between the jobs' progress bars)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bridgeeval.records import try_read_job_record

log = logging.getLogger("bridgeeval")


class MultirunSummary(Callback):
    """A Hydra callback: after a basic-sweeper multirun, one line per job (its overrides, mNNOs and
    which of X and Y f(X) stays closer to) and the command that reports them as Table 1. Sweeps by
    Optuna print their own per-trial lines and best instead."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
            return
        folder = Path(config.hydra.sweep.dir)
        lines = summary_lines(folder)
        if lines:
            log.info("multirun: %d job(s) in %s\n%s\nTable 1: bridgeeval report %s", len(lines) - 2, folder,
                     "\n".join(lines), folder)


def summary_lines(folder: Path) -> list[str]:
    """A Markdown table of the jobs under ``folder``, in job order, with the overrides that vary."""
    rows = []
    jobs = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    shared = set.intersection(*(set(_overrides(job).split()) for job in jobs)) if len(jobs) > 1 else set()
    for job in jobs:
        varying = " ".join(o for o in _overrides(job).split() if o not in shared)
        record = try_read_job_record(job)
        if record is None:
            rows.append(f"| {job.name} | {varying} | - | - | not finished (see {job.name}/) |")
            continue
        x, y = record.headline("mnno_input_mapped"), record.headline("mnno_target_mapped")
        if x is None or y is None:
            continue
        closer = "X (input)" if x > y else "Y (target)"
        rows.append(f"| {job.name} | {varying} | {x:.3f} | {y:.3f} | {closer} |")
    if not rows:
        return []
    return ["| job | overrides | mNNO(X,f(X)) | mNNO(Y,f(X)) | f(X) closer to |", "|---|---|---|---|---|", *rows]


def _overrides(job: Path) -> str:
    from bridgeeval.reports.collect import job_overrides

    return " ".join(job_overrides(job) or [])
