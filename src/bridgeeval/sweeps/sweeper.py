"""The sweep loop: Optuna asks, Hydra's launcher runs the batch, the study is told the results."""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from bridgeeval.errors import BridgeEvalError
from bridgeeval.sweeps import coordination as co
from bridgeeval.sweeps.samplers import build_sampler
from bridgeeval.sweeps.space import as_override, grid_points, parse_space
from bridgeeval.sweeps.storage import absolute_url, open_storage, redact

log = logging.getLogger(__name__)
GRID_ATTR = "bridgeeval:grid_size"


@dataclass
class SweepSettings:
    sampler: str = "tpe"
    seed: int | None = 0
    direction: str = "minimize"
    study_name: str = "bridgeeval"
    storage: str = "sqlite:///outputs/optuna/bridgeeval.db"
    n_trials: int | None = None
    n_jobs: int = 1
    max_failure_rate: float = 0.25
    params: dict[str, Any] = field(default_factory=dict)
    pruner: Any = None
    heartbeat_interval: float = 30.0
    grace_period: float = 300.0
    retry_failed: bool = False


class OptunaSweep:
    """Runs (its share of) one study; several processes may run the same study at once."""

    def __init__(self, settings: SweepSettings, launcher, arguments: list[str]):
        self.s = settings
        self.launcher = launcher
        self.space, self.fixed = parse_space(settings.params, arguments)
        if not self.space:
            raise BridgeEvalError("sweep: no params to search (hydra.sweeper.params is empty)")
        self.grid = grid_points(self.space) if settings.sampler == "grid" else None
        self.url = absolute_url(settings.storage)
        self.job_idx = 0
        self.failures = 0
        self.attempts = 0

    # -- study -------------------------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        storage = open_storage(self.url)
        sampler = build_sampler(self.s.sampler, self.s.seed)
        try:
            study = optuna.create_study(
                study_name=self.s.study_name, storage=storage, sampler=sampler, direction=self.s.direction
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=self.s.study_name, storage=storage, sampler=sampler)
            created = False
        if study.direction.name.lower() != self.s.direction.lower():
            raise BridgeEvalError(
                f"study {self.s.study_name!r} exists with direction {study.direction.name.lower()}, "
                f"not {self.s.direction}"
            )
        study.set_user_attr(co.PRUNER_ATTR, self.s.pruner)
        if self.grid is not None:
            self._fill_grid(study, created)
        return study

    def _fill_grid(self, study: optuna.Study, created: bool) -> None:
        """The creator enqueues every grid point once; later processes only wait for that, unless
        the creator died while enqueueing or the user asked to retry failed points."""
        if not created:
            deadline = time.time() + 60
            while GRID_ATTR not in study.user_attrs and time.time() < deadline:
                time.sleep(0.5)
            if GRID_ATTR in study.user_attrs and not self.s.retry_failed:
                return
        points = self.grid if created else self._missing_points(study)
        for point in points:
            study.enqueue_trial(point)
        study.set_user_attr(GRID_ATTR, len(self.grid))
        log.info("enqueued %d of %d grid points in study %s", len(points), len(self.grid), self.s.study_name)

    def _missing_points(self, study: optuna.Study) -> list[dict]:
        """Grid points with no waiting, running or finished trial (failed ones count as missing)."""
        alive = (TrialState.WAITING, TrialState.RUNNING, *co.FINISHED)
        have = {_key(t.params or t.system_attrs.get("fixed_params", {})) for t in study.get_trials(states=alive)}
        return [p for p in self.grid if _key(p) not in have]

    def n_trials(self) -> int:
        if self.s.n_trials is not None:
            return int(self.s.n_trials)
        if self.grid is not None:
            return len(self.grid)
        raise BridgeEvalError("sweep: set hydra.sweeper.n_trials (only sampler=grid has a natural size)")

    # -- loop --------------------------------------------------------------------------------
    def run(self) -> optuna.Study:
        study = self.open_study()
        target = self.n_trials()
        log.info(
            "study %s on %s: %d/%d trials finished",
            self.s.study_name,
            redact(self.url),
            co.count(study, co.FINISHED),
            target,
        )
        with co.Heartbeat(study, self.s.heartbeat_interval) as beat, _CtrlC() as ctrl_c:
            while True:
                if ctrl_c.pressed:  # a Ctrl-C that Python swallowed (e.g. inside a finalizer)
                    raise KeyboardInterrupt
                recovered = co.recover_stale(study, self.s.grace_period)
                if recovered:
                    log.warning("trials %s had no live worker: marked failed and enqueued again", recovered)
                batch = self._next_batch(study, target)
                if not batch:
                    break
                beat.trial_ids.update(co.trial_id(study, t.number) for t in batch)
                try:
                    self._run_batch(study, batch)
                except BaseException:
                    self._abandon(study, batch)
                    raise
                finally:
                    beat.trial_ids.difference_update(co.trial_id(study, t.number) for t in batch)
        done = co.count(study, co.FINISHED)
        log.info("study %s: %d finished trials; best %s", self.s.study_name, done, _best_text(study))
        return study

    def _next_batch(self, study: optuna.Study, target: int) -> list[optuna.Trial]:
        finished = co.count(study, co.FINISHED)
        if self.grid is not None:
            batch = []
            while len(batch) < self.s.n_jobs and finished + len(batch) < target:
                trial = co.claim_waiting(study)
                if trial is None:
                    break
                batch.append(trial)
            return batch
        running = co.count(study, (TrialState.RUNNING,))
        size = min(self.s.n_jobs, target - finished - running)
        batch = []
        for _ in range(max(0, size)):
            trial = study.ask()
            co.mark_owned(study, co.trial_id(study, trial.number))
            batch.append(trial)
        return batch

    def _run_batch(self, study: optuna.Study, batch: list[optuna.Trial]) -> None:
        overrides = [self._overrides(trial) for trial in batch]
        returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        for trial, ret in zip(batch, returns):
            self._tell(study, trial, ret)

    def _overrides(self, trial: optuna.Trial) -> list[str]:
        values = {name: param.suggest(trial) for name, param in self.space.items()}
        identity = {
            "sweep_trial.storage": self.url,
            "sweep_trial.study_name": self.s.study_name,
            "sweep_trial.number": trial.number,
        }
        job = [*self.fixed, *(as_override(k, v) for k, v in values.items())]
        trial.set_user_attr("overrides", job)  # reruns the trial's configuration: train.py + these
        return job + [as_override(k, v) for k, v in identity.items()]

    def _tell(self, study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> None:
        self.attempts += 1
        output_dir = _output_dir(ret)
        if output_dir:
            trial.set_user_attr("output_dir", output_dir)
            metrics = _read_metrics(output_dir)
            if metrics:
                trial.set_user_attr("metrics", metrics)
        if ret.status == JobStatus.COMPLETED:
            value = ret.return_value
            if isinstance(value, (int, float)) and math.isfinite(value):
                study.tell(trial, float(value))
                return
            error = f"objective is {value!r}, not a finite number"
        elif isinstance(ret._return_value, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned", trial.number)
            return
        else:
            err = ret._return_value
            error = f"{type(err).__name__}: {err}"
        self.failures += 1
        trial.set_user_attr("error", error[:2000])
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, error.splitlines()[0] if error else "")
        rate = self.failures / self.attempts
        if rate > self.s.max_failure_rate:
            raise BridgeEvalError(
                f"sweep stopped: {self.failures} of {self.attempts} trials failed "
                f"(failure rate {rate:.2f} > max_failure_rate {self.s.max_failure_rate}); last: {error.splitlines()[0]}"
            )

    def _abandon(self, study: optuna.Study, batch: list[optuna.Trial]) -> None:
        """Ctrl-C or a crash of the launcher: trials in flight are failed and their params requeued."""
        for trial in batch:
            frozen = study.get_trials(deepcopy=False)[trial.number]
            if frozen.state != TrialState.RUNNING:
                continue
            try:
                trial.set_user_attr("error", "interrupted")
                study.tell(trial, state=TrialState.FAIL)
            except Exception as err:  # noqa: BLE001 - best effort while stopping
                log.warning("could not mark trial %d failed: %s", trial.number, err)
                continue
            if self.grid is not None or frozen.params:
                co.requeue(study, study.get_trials(deepcopy=False)[trial.number])


class _CtrlC:
    """Remembers a Ctrl-C even where Python drops the KeyboardInterrupt it raises (in finalizers
    and weakref callbacks, "Exception ignored in ..."), so the sweep still stops after the batch."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum, frame):
        self.pressed = True
        if callable(self._previous):
            self._previous(signum, frame)  # Python's default handler raises KeyboardInterrupt
        else:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, self._previous)


def _key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _output_dir(ret: JobReturn) -> str | None:
    try:
        return str(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # noqa: BLE001 - launchers differ in what they return
        return None


def _read_metrics(output_dir: str) -> dict | None:
    path = Path(output_dir) / "metrics.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _best_text(study: optuna.Study) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return "none yet"
    return f"trial {best.number} value {best.value:.6g} params {best.params}"
