"""``bridgeeval reproduce table1``: the paper's Table 1 with hyperparameters chosen as the paper
chose them (its Appendix A), in three steps per cell (data set x direction x mapper, and depth and
loss for the appendix layouts):

1. select: the paper's grid (``hparams_search=paper_grid``) scored by 5-fold CV loss over the
   training items, each trial at the epoch count its mean CV curve chose (``cv.select_epoch``), one
   resumable Optuna study per cell (``<out>/optuna/<cell>.db``);
2. evaluate: the selected configuration, trained for its selected epochs, under the released code's protocol
   (``experiment=released_protocol``): where the data set has no official split, the out-of-fold
   predictions of 5 folds evaluated over the whole set at once; where it has one, 5 seeds trained
   on the training split, each evaluated on the whole test set;
3. report: Table 1 from the evaluations (``--evaluation pooled``) with the paper's values and the
   item-level tests, and the configuration each cell selected.

Each step of a cell is one ``train.py`` process whose jobs run inside it (no start-up per job);
its output goes to ``<out>/logs/``. A rerun skips finished grid points and finished evaluations.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import write_json_atomic, write_text_atomic
from bridgeeval.models.mappers import MAPPERS, depth_problem, has_depth
from bridgeeval.records import try_read_job_record

LOCAL_DATASETS = ("imagenet1k", "iaprtc", "wiki")
# The quick variant: 2 grid points for a net and for a linear map (the full grid: 60 and 3), scored
# by 3-fold CV within 30 epochs, and 3 seeds on an official split (the full run: 5-fold CV, 5 seeds).
QUICK_GRID = {"optimizer.lr": (0.01, 0.001), "mapper.hidden_units": (256,), "mapper.dropout": (0.25,)}
QUICK_FOLDS, QUICK_SEEDS, SEEDS = 3, 3, 5
NULL, QUICK_NULL = 1000, 100  # permutations of each cell's null (reports.calibrated)
QUICK_EPOCHS = 30  # the quick grid's epoch budget (the full grid's: 100, sweeps/paper_grid.yaml)
QUIET = ["logger=none", "trainer.enable_progress_bar=false"]


@dataclass(frozen=True)
class Cell:
    dataset: str
    direction: str
    mapper: str
    depth: int = 1
    loss: str = "mse"

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.direction}-{self.mapper}-d{self.depth}-{self.loss}"

    def overrides(self) -> list[str]:
        return [f"dataset={self.dataset}", f"direction={self.direction}", f"mapper={self.mapper}",
                f"depth={self.depth}", f"loss={self.loss}"]


@dataclass
class Selection:
    cell: Cell
    params: dict
    value: float
    trials: int
    seconds: float
    epochs: int | None = None  # the epoch count CV chose (None: a study from before epochs were chosen)
    budget: int | None = None  # the most epochs a trial could train

    @property
    def epochs_text(self) -> str | None:
        """``47 of 100`` (``†`` at the budget's last), ``closed form``, or None (not chosen by CV)."""
        if getattr(MAPPERS.get(self.cell.mapper), "closed_form", False):
            return "closed form"
        if self.epochs is None:
            return None
        return f"{self.epochs} of {self.budget}" + ("†" if self.at_budget else "")

    @property
    def at_budget(self) -> bool:
        """The chosen epoch is the budget's last: the curve may still have been improving."""
        return self.epochs is not None and self.budget is not None and self.budget > 1 and self.epochs == self.budget


def cells_of(datasets, directions, mappers, depths=(1,), losses=("mse",)) -> list[Cell]:
    """Every combination whose depth fits its mapper (a linear map's is 1 only)."""
    return [
        Cell(d, r, m, depth, loss)
        for d in datasets for r in directions for m in mappers for depth in depths for loss in losses
        if depth_problem(m, depth) is None
    ]


def find_app(app: str | None = None) -> Path:
    """``train.py`` of the checkout: given, in the working folder, or beside the installed sources."""
    candidates = [Path(app)] if app else [Path("train.py"), Path(__file__).resolve().parents[3] / "train.py"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise BridgeEvalError(f"{candidates[0]}: train.py not found; run from a bridgeeval checkout or pass --app")


def available(datasets: list[str], asked: bool) -> list[str]:
    """The data sets whose files are here; a missing one is an error when asked for by name, else
    a note saying how to fetch it."""
    found = []
    for name in datasets:
        try:
            has_official_split(name)
        except BridgeEvalError as err:
            if asked:
                raise
            print(f"bridgeeval: {name} skipped: {err}", file=sys.stderr)
            continue
        found.append(name)
    return found


@functools.lru_cache(maxsize=None)
def has_official_split(dataset: str) -> bool:
    """Loads the data set (once a process: ``available`` checks it, each cell's evaluation asks)."""
    from bridgeeval.data.datasets import load_paired

    return load_paired({"name": dataset}, None, "text2image").test_mask is not None


def grid_override(cell: Cell, quick: bool) -> list[str]:
    if not quick:
        return []
    if cell.mapper == "lstsq":
        # The closed form fits in one step, so its whole alpha grid stays (8 points). The grid sits
        # in a conditional entry keyed `mapper=lstsq`, which no command-line override can name.
        return [f"cv.folds={QUICK_FOLDS}"]
    keys = ["optimizer.lr"] + (["mapper.hidden_units", "mapper.dropout"] if has_depth(cell.mapper) else [])
    choices = ",".join(f'{k}:"choice({",".join(map(str, QUICK_GRID[k]))})"' for k in keys)
    return [f"hydra.sweeper.params={{{choices}}}", f"cv.folds={QUICK_FOLDS}", f"trainer.max_epochs={QUICK_EPOCHS}"]


class Reproduction:
    def __init__(self, out: Path, app: Path, quick: bool = False, seeds: int | None = None,
                 extra: list[str] | None = None, echo=print, null: int | None = None):
        self.out, self.app, self.quick = Path(out).resolve(), app, quick
        self.seeds = seeds or (QUICK_SEEDS if quick else SEEDS)
        self.null = (QUICK_NULL if quick else NULL) if null is None else null  # 0: no null
        self.extra = list(extra or [])
        self.echo = echo

    def _run(self, step: str, cell: Cell, args: list[str]) -> None:
        """One ``train.py`` process, its output in ``<out>/logs/<step>-<cell>.log``; a failure is
        one line naming the log and its last error line."""
        log = self.out / "logs" / f"{step}-{cell.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as handle:
            code = subprocess.run([sys.executable, str(self.app), *args], cwd=self.app.parent,
                                  stdout=handle, stderr=subprocess.STDOUT).returncode
        if code != 0:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            last = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
            raise BridgeEvalError(f"{step} {cell.name} failed (exit {code}; {log}): {last.strip()}")

    def study_name(self, cell: Cell) -> str:
        return cell.name + ("-quick" if self.quick else "")  # the two grids never share a study

    def select(self, cell: Cell) -> Selection:
        from bridgeeval.sweeps.best import load
        from bridgeeval.sweeps.settings import default_storage

        started, name = time.time(), self.study_name(cell)
        storage = default_storage(name, self.out)
        if not _grid_finished(name, self.out):  # a finished grid needs no train.py process
            self._run("select", cell, [
                "hparams_search=paper_grid", *cell.overrides(), f"paths.log_dir={self.out}",
                f"hydra.sweeper.study_name={name}", *grid_override(cell, self.quick), *QUIET, *self.extra,
            ])
        study = load(name, storage)
        best = study.best_trial
        done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        metrics = best.user_attrs.get("metrics") or {}
        epochs, budget = metrics.get("best_epoch"), metrics.get("epoch_budget")
        return Selection(cell, dict(best.params), float(best.value), done, time.time() - started,
                         int(epochs) if epochs else None, int(budget) if budget else None)

    def evaluate(self, selection: Selection) -> tuple[Path, float]:
        """The selected configuration under the released protocol; skipped when already evaluated."""
        cell, started = selection.cell, time.time()
        folder = self.out / "evaluate" / cell.name
        seeds = list(range(self.seeds)) if has_official_split(cell.dataset) else [0]
        wanted = {"params": selection.params, "seeds": seeds, "epochs": selection.epochs}
        epochs = [f"trainer.max_epochs={selection.epochs}"] if selection.epochs else []
        record = folder / "selected.json"
        finished = all(_finished(folder / str(i)) for i in range(len(seeds)))
        if finished and record.is_file() and json.loads(record.read_text()) == wanted:
            return folder, 0.0
        self._run("evaluate", cell, [
            "-m", "experiment=released_protocol", *cell.overrides(),
            *[f"{key}={value}" for key, value in selection.params.items()], *epochs,
            f"seed={','.join(map(str, seeds))}", "cv.protocol=auto", "cv.folds=5",
            f"paths.log_dir={self.out}", f"hydra.sweep.dir={folder}", "overwrite=true", "checkpoint=true",
            *QUIET, *self.extra,
        ])  # overwrite: an earlier evaluation of other params or seeds is replaced, never mixed in;
        # checkpoint: with mapped.npy (or mapped_splits.npz), each printed value can be checked
        write_json_atomic(record, wanted)
        return folder, time.time() - started

    def run(self, cells: list[Cell]) -> dict:
        started = time.time()
        selections, seconds = [], {"select": 0.0, "evaluate": 0.0}
        for cell in cells:
            selection = self.select(cell)
            seconds["select"] += selection.seconds
            params = " ".join(f"{k}={v}" for k, v in selection.params.items())
            text = selection.epochs_text
            at = "" if text is None else f", {text}" if text == "closed form" else f", {text} epochs"
            self.echo(f"select   {cell.name}: {selection.trials} trial(s), CV val/loss {selection.value:.5g} "
                      f"at {params}{at} ({selection.seconds:.0f} s)")
            _, took = self.evaluate(selection)
            seconds["evaluate"] += took
            self.echo(f"evaluate {cell.name}: " + (f"{took:.0f} s" if took else "already done"))
            selections.append(selection)
        return self.report(selections, seconds, time.time() - started)

    def report(self, selections: list[Selection], seconds: dict, wall: float) -> dict:
        from bridgeeval.reports.calibrated import calibrated_markdown, calibrated_rows
        from bridgeeval.reports.closed_form import closed_form_gaps, gaps_markdown
        from bridgeeval.reports.collect import collect_jobs
        from bridgeeval.reports.table1 import build_table1

        jobs, problems = collect_jobs([self.out / "evaluate" / s.cell.name for s in selections])
        if problems:
            raise BridgeEvalError(f"evaluation folders incomplete: {problems[0]}")
        result = build_table1(jobs, evaluation="pooled")
        chosen = selection_table(selections)
        gaps = closed_form_gaps(jobs, "pooled")
        calibrated = calibrated_rows(jobs, self.null) if self.null else []
        grid = (f"quick grid, {QUICK_FOLDS}-fold selection, {self.seeds} seeds" if self.quick
                else f"the paper's full grid, 5-fold selection, {self.seeds} seeds")
        text = (
            f"# Table 1, reproduced ({grid}; {len(selections)} cell{'s' if len(selections) != 1 else ''}; {wall / 60:.1f} min wall, "
            f"selection {seconds['select'] / 60:.1f} min, evaluation {seconds['evaluate'] / 60:.1f} min)\n\n"
            f"{result.table.markdown()}\n\n## Selected by CV loss on the training items\n\n{chosen}\n"
        )
        text += (f"\n## {gaps_markdown(gaps)}" if gaps else "") + (
            f"\n## {calibrated_markdown(calibrated)}" if calibrated else "")
        write_text_atomic(self.out / "table1.md", text)
        write_text_atomic(self.out / "table1.csv", result.table.csv())
        summary = {"cells": [_selection_record(s) for s in selections], "table1": result.records(),
                   "calibrated": calibrated,
                   "seconds": {"wall": wall, **seconds}, "quick": self.quick}
        write_json_atomic(self.out / "reproduce.json", summary)
        self.echo(text)
        self.echo(f"results: {self.out} (table1.md, table1.csv, reproduce.json; evaluate/, optuna/, logs/)")
        return summary


def selection_table(selections: list[Selection]) -> str:
    """The configuration each cell chose, its epochs (``30 of 30†``: the budget's last), and a note
    under the table when any chose the budget's last epoch."""
    keys = sorted({k for s in selections for k in s.params})
    head = ["cell", "trials", "CV val/loss", "epochs", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in selections:
        values = [str(s.params.get(k, "")) for k in keys]
        lines.append("| " + " | ".join([s.cell.name, str(s.trials), f"{s.value:.5g}", s.epochs_text or "-", *values]) + " |")
    last = [s.cell.name for s in selections if s.at_budget]
    if last:
        lines.append(f"\n† the budget's last epoch ({', '.join(last)}): the mean CV curve may still have been "
                     "improving; rerun with a larger trainer.max_epochs (--override) to let CV choose")
    return "\n".join(lines)


def _selection_record(s: Selection) -> dict:
    return {"cell": s.cell.name, "params": s.params, "cv_val_loss": s.value, "trials": s.trials, "seconds": s.seconds,
            "best_epoch": s.epochs, "epoch_budget": s.budget, "at_budget": s.at_budget}


def _grid_finished(study_name: str, out: Path) -> bool:
    """The study exists, its sweep recorded how many trials it must finish, and all are done."""
    from bridgeeval.sweeps import coordination as co
    from bridgeeval.sweeps.best import TARGET_ATTR, load
    from bridgeeval.sweeps.settings import default_storage
    from bridgeeval.sweeps.storage import parse_url

    storage = default_storage(study_name, out)
    if not parse_url(storage).path.is_file():
        return False
    study = load(study_name, storage)
    target = study.user_attrs.get(TARGET_ATTR)
    counts = co.tally(study.get_trials(deepcopy=False), max_retries=2)
    return bool(target) and counts.complete > 0 and counts.done >= target and not counts.running


def _finished(job: Path) -> bool:
    record = try_read_job_record(job)
    return record is not None and record.status == "finished"
