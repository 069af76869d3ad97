"""What a plain multirun found, in one table at its end (each job also ends with its own lines,
but they scroll away between the jobs' progress bars)."""

from __future__ import annotations

import logging
import math
import time
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


class MultirunProgress(Callback):
    """A Hydra callback: where a plain multirun runs its jobs in this process (the basic launcher),
    each job starts with "job k of n" and, from the second, the time left at the jobs' mean pace."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.swept: set[str] = set()  # the keys the sweep varies, shown for each job
        self.seconds: list[float] = []
        self._started: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "BasicSweeper" in str(config.hydra.sweeper.get("_target_", "")):
            task, params = list(config.hydra.overrides.task), config.hydra.sweeper.get("params")
            self.total = basic_sweep_size(task, params)
            self.swept = {o.split("=", 1)[0] for o in task if "," in o or "(" in o} | set(params or {})

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        if self.total is None:
            return
        k = int(HydraConfig.get().job.num) + 1
        varying = " ".join(o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0] in self.swept)
        left = ""
        if self.seconds:
            left = f"; about {_duration(sum(self.seconds) / len(self.seconds) * (self.total - k + 1))} left"
        log.info("job %d of %d (%s)%s", k, self.total, varying, left)
        self._started = time.monotonic()

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._started is not None:
            self.seconds.append(time.monotonic() - self._started)
            self._started = None


def basic_sweep_size(overrides: list[str], params: Any = None) -> int | None:
    """How many jobs Hydra's basic sweeper makes of these command-line overrides and
    ``hydra.sweeper.params``: the product of each sweep's length (None where one cannot be counted).

    Example:
        >>> basic_sweep_size(["mapper=nn,lin", "loss=mse,cosine,max_margin", "seed=0"])
        6
        >>> basic_sweep_size(["depth=range(1,6,2)"], {"seed": "0,1"})
        6
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    texts = [*overrides, *(f"{k}={v}" for k, v in (params or {}).items())]
    try:
        parsed = OverridesParser.create().parse_overrides(texts)
        return math.prod(len(list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override())
    except Exception:  # noqa: BLE001 - a form this count does not know: no count, the jobs still run
        return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


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
