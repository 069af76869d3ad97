"""The sweep loop: Optuna asks, Hydra's launcher runs the batch, the study is told the results.

Several processes may run one study at once (``coordination`` says how). With a launcher that
can ``submit`` jobs and give a ``follower`` of them (the SLURM one), each trial is told as its own
job ends and its slot takes the next trial at once; with the others (basic, joblib, submitit
local) a batch is launched and waited for as a whole.
"""

from __future__ import annotations

import collections
import datetime
import fcntl
import logging
import math
import os
import signal
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from bridgeeval.errors import BridgeEvalError
from bridgeeval.records import try_read_job_record
from bridgeeval.sweeps import coordination as co
from bridgeeval.sweeps import optuna_private as private
from bridgeeval.sweeps.best import RETRIES_ATTR, TARGET_ATTR
from bridgeeval.sweeps.samplers import build_sampler, is_grid, sampler_spec
from bridgeeval.sweeps.settings import SweepSettings
from bridgeeval.sweeps.slurm import failed_return
from bridgeeval.sweeps.space import as_override, describe_space, grid_points, parse_space, space_signature
from bridgeeval.sweeps.storage import StorageURL, check_file_storage, open_storage, parse_url, redact

log = logging.getLogger(__name__)


class SweepInterrupted(BaseException):
    """SIGINT or SIGTERM reached the sweep process."""


class OptunaSweep:
    """Runs (its share of) one study; several processes may run the same study at once."""

    def __init__(self, settings: SweepSettings, launcher, arguments: list[str], config=None):
        self.s = settings
        self.launcher = launcher
        self.config = config  # the composed config, for custom_search_space and the job identity
        if settings.search_space:
            raise BridgeEvalError(
                "hydra.sweeper.search_space was removed from the Optuna sweeper; write the same space under "
                "hydra.sweeper.params (e.g. x: interval(-5, 5), n: range(1, 10), c: choice(a, b))"
            )
        if settings.failure_rate_over not in ("batch", "sweep"):
            raise BridgeEvalError(f"failure_rate_over={settings.failure_rate_over!r}: choose batch or sweep")
        self.sampler = sampler_spec(settings.sampler)
        self.directions = _directions(settings.direction)
        single = config.get("optimized_metric") if config is not None else None
        if len(self.directions) > 1 and isinstance(single, str):  # refused before any trial runs
            raise BridgeEvalError(f"hydra.sweeper.direction gives {len(self.directions)} objectives, but each job "
                                  f"returns one value (optimized_metric={single}); give one direction")
        self.space, self.fixed = parse_space(settings.params, arguments)
        self.extend = _custom_search_space(settings.custom_search_space)
        self.grid = grid_points(self.space) if is_grid(self.sampler) else None
        self.where: StorageURL | None = parse_url(settings.storage) if settings.storage else None
        self.url = self.where.url if self.where else None
        self.job_idx = _first_free_job_number(config)
        self.batch_errors: list[str] = []
        self.failures = 0
        self.attempts = 0
        self._sqlite_lock = None
        self._stop: _StopSignals | None = None
        self.target()  # refuse a sweep without a size before anything is written

    # -- study -------------------------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        self._warn_relative()
        if self.where is not None:
            check_file_storage(self.where)  # before its lock file is made
        self._lock_sqlite()
        storage = open_storage(self.where) if self.where else optuna.storages.InMemoryStorage()
        try:
            study_id = storage.create_new_study(self.directions, self.s.study_name)
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study_id, created = storage.get_study_id_from_name(self.s.study_name), False
        self.study_name = storage.get_study_name_from_id(study_id)
        seed = self.sampler["seed"] if self.sampler.get("seed") is not None else self.s.seed
        sampler = build_sampler(self.sampler, worker_seed(seed, created))
        study = optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler)
        if list(study.directions) != self.directions:
            have = ", ".join(d.name.lower() for d in study.directions)
            want = ", ".join(d.name.lower() for d in self.directions)
            raise BridgeEvalError(f"study {self.study_name!r} exists with direction {have}, not {want}")
        self._check_space(study)
        study.set_user_attr(co.PRUNER_ATTR, self.s.pruner)
        return study

    def _check_space(self, study: optuna.Study) -> None:
        """A study's search space is the one it was created with: a sweep of another grid or space
        under the same name is refused before it adds anything (its points would be counted, and
        Optuna would refuse the mixed distributions mid-sweep)."""
        mine = space_signature(self.space)
        stored = study.user_attrs.get(co.SPACE_ATTR)
        if stored is None:  # a new study, or one made before spaces were stored: its trials say
            seen: dict[str, str] = {}
            for trial in study.get_trials(deepcopy=False):
                for name, distribution in trial.distributions.items():
                    seen.setdefault(name, distribution_to_json(distribution))
            if all(_same_distribution(seen[k], mine[k]) for k in seen if k in mine):
                study.set_user_attr(co.SPACE_ATTR, mine)
                return
            stored = {k: seen[k] for k in sorted(seen)}
        if stored.keys() != mine.keys() or not all(_same_distribution(stored[k], mine[k]) for k in mine):
            raise BridgeEvalError(
                f"study {self.study_name!r} searches {describe_space(stored)}; this sweep searches "
                f"{describe_space(mine)}: give it another name (hydra.sweeper.study_name=...)")

    def _warn_relative(self) -> None:
        if self.where is None:
            return
        cluster = bool(os.environ.get("SLURM_JOB_ID")) or type(self.launcher).__name__ == "SlurmLauncher"
        if self.where.relative and cluster:
            log.warning(
                "storage %s is a relative path, resolved here to %s: every worker must resolve it to the same "
                "shared file (give an absolute path, e.g. journal:///shared/path/study.log)",
                self.s.storage,
                self.where.path,
            )

    def _lock_sqlite(self) -> None:
        """SQLite cannot hand out trials atomically: one sweep process per file, refused otherwise."""
        if self.where is None or self.where.backend != "sqlite":
            return
        path = Path(f"{self.where.path}.sweep-lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise BridgeEvalError(
                f"storage {self.url} is in use by another sweep ({holder}); SQLite cannot share a study "
                "between workers: use journal:///PATH (shared file system) or postgresql://USER@HOST/DB"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(co.owner_tag())
        handle.flush()
        self._sqlite_lock = handle

    def target(self) -> int:
        """The sweep's size: with ``resume`` the study's done trials to reach, else trials to run now."""
        if self.grid is not None:
            return len(self.grid) if self.s.n_trials is None else min(int(self.s.n_trials), len(self.grid))
        if self.s.n_trials is not None:
            if int(self.s.n_trials) < 0:
                raise BridgeEvalError(f"hydra.sweeper.n_trials={self.s.n_trials}: must be 0 or more")
            return int(self.s.n_trials)
        raise BridgeEvalError("sweep: set hydra.sweeper.n_trials (only the grid sampler has a natural size)")

    def repair(self, study: optuna.Study, first: bool = False) -> None:
        trials = study.get_trials(deepcopy=False)
        if not (first or co.needs_repair(trials, self.grid, self.s.grace_period, self.s.max_retries)):
            return
        for line in co.repair(study, self.grid, self.s.grace_period, self.s.max_retries, first and self.s.retry_failed):
            (log.warning if "lost" in line else log.info)("%s", line)

    # -- loop --------------------------------------------------------------------------------
    def run(self) -> optuna.Study:
        study = self.open_study()
        self.repair(study, first=True)
        counts = co.tally(study.get_trials(deepcopy=False), self.s.max_retries)
        # Stock semantics count this run's trials; with resume, the study's finished ones.
        target = self.target() if self.s.resume else counts.done + self.target()
        study.set_user_attr(TARGET_ATTR, target)
        study.set_user_attr(RETRIES_ATTR, self.s.max_retries)  # sweep status counts as this run does
        where = redact(self.url) if self.url else "memory"
        log.info("study %s on %s: %d/%d trials done", self.study_name, where, counts.done, target)
        with co.Heartbeat(study, self.s.heartbeat_interval) as beat, _StopSignals() as stop:
            self._stop = stop
            if hasattr(self.launcher, "follower"):
                self._run_pool(study, target, beat, stop)
            else:
                self._run_batches(study, target, beat, stop)
        self._finish(study, target)
        return study

    def interrupted_by(self) -> signal.Signals | None:
        received = self._stop.received if self._stop else None
        return signal.Signals(received) if received is not None else None

    def _finish(self, study: optuna.Study, target: int) -> None:
        trials = study.get_trials(deepcopy=False)
        counts = co.tally(trials, self.s.max_retries)
        log.info(
            "study %s: %d/%d done (%d complete, %d pruned, %d failed); best %s",
            self.study_name,
            counts.done,
            target,
            counts.complete,
            counts.pruned,
            counts.failed,
            _best_text(study),
        )
        if counts.failed and not (counts.complete or counts.pruned):
            if self.s.max_failure_rate >= 1.0:  # failures allowed: say so, but the run succeeded (stock)
                print(f"bridgeeval: warning: sweep ended with no successful trial: {counts.failed} failed "
                      "(max_failure_rate=1.0 allows it; `bridgeeval sweep status` lists the errors)", file=sys.stderr)
                return
            last = max((t for t in trials if t.state == TrialState.FAIL), key=lambda t: t.number)
            raise BridgeEvalError(
                f"sweep ended with no successful trial: {counts.failed} failed; last: "
                f"{str(last.user_attrs.get('error', '?')).splitlines()[0]}"
            )

    def _run_batches(self, study: optuna.Study, target: int, beat: co.Heartbeat, stop) -> None:
        """Launchers that run a batch as a whole (basic, joblib, submitit local)."""
        waiting_logged = False
        while True:
            stop.check()
            self.repair(study)
            batch = self._next_batch(study, target, self.s.n_jobs)
            if batch:
                waiting_logged = False
                self._run_batch(study, batch, beat)
                continue
            if self._nothing_left(study, target):
                return
            waiting_logged = self._wait_for_others(study, stop, waiting_logged)

    def _run_pool(self, study: optuna.Study, target: int, beat: co.Heartbeat, stop) -> None:
        """Launchers that submit jobs and follow them (Slurm): a slot freed by one job takes the
        next trial at once; no slot waits for a slow or requeued sibling. The failure rate is
        judged over the last ``n_jobs`` trials told (the stock plugin's batch)."""
        follower = self.launcher.follower()
        held: dict[int, optuna.Trial] = {}  # this process's trials not yet told, by number
        by_job: dict[int, optuna.Trial] = {}  # the same, by the follower's index of their job
        recent: collections.deque[bool] = collections.deque(maxlen=self.s.n_jobs)
        launched, waiting_logged = 0, False
        try:
            while True:
                stop.check()
                self.repair(study)
                batch = self._next_batch(study, target, self.s.n_jobs - len(held))
                if batch:
                    waiting_logged = False
                    held.update((t.number, t) for t in batch)
                    beat.trial_ids.update(private.trial_id_of(t) for t in batch)
                    by_job.update(zip(follower.add(self._submit(batch)), batch))
                    launched += len(batch)
                if held:
                    told = follower.poll()
                    for outcome in told:
                        trial = by_job.pop(outcome.index)
                        del held[trial.number]
                        beat.trial_ids.discard(private.trial_id_of(trial))
                        recent.append(self._take_outcome(study, trial, outcome))
                        self._check_failure_rate(sum(recent), min(self.s.n_jobs, launched), "of the last told")
                        stop.check()
                    if not told:
                        stop.sleep(follower.poll_interval)
                    continue
                if self._nothing_left(study, target):
                    return
                waiting_logged = self._wait_for_others(study, stop, waiting_logged)
        except BaseException as err:
            follower.cancel()
            self._abandon(study, list(held.values()), err)
            raise

    def _submit(self, batch: list[optuna.Trial]) -> list[Any]:
        jobs = self.launcher.submit([self._overrides(trial) for trial in batch], initial_job_idx=self.job_idx)
        self.job_idx += len(jobs)
        for trial, job in zip(batch, jobs):
            trial.set_user_attr("slurm_job", str(job.job_id))
        return jobs

    def _take_outcome(self, study: optuna.Study, trial: optuna.Trial, outcome) -> bool:
        """Tells the study how the trial's job ended; True when the trial failed (not when lost)."""
        if outcome.lost:
            if co.end_trial(study, trial.number, f"lost: {outcome.lost}", co.LOST):
                again = co.attempt_of(trial) < self.s.max_retries + 1
                log.warning("trial %d lost: %s; %s", trial.number, outcome.lost,
                            "it will run again" if again else
                            f"given up after {co.attempt_of(trial)} attempt(s) (max_retries="
                            f"{self.s.max_retries}; hydra.sweeper.retry_failed=true reruns it)")
            return False
        failures = self.failures
        self._tell(study, trial, outcome.result if outcome.error is None else failed_return([], outcome.error))
        return self.failures > failures

    def _nothing_left(self, study: optuna.Study, target: int) -> bool:
        counts = co.tally(study.get_trials(deepcopy=False), self.s.max_retries)
        return counts.done >= target or not (counts.running or counts.lost or counts.waiting)

    def _wait_for_others(self, study: optuna.Study, stop, logged: bool) -> bool:
        """Trials running in other workers may still fail or be lost: stay to rerun them."""
        if not logged:
            counts = co.tally(study.get_trials(deepcopy=False), self.s.max_retries)
            log.info("waiting for %d trial(s) running in other workers", counts.running)
        stop.sleep(self.s.poll_interval)
        return True

    def _next_batch(self, study: optuna.Study, target: int, size: int) -> list[optuna.Trial]:
        batch: list[optuna.Trial] = []
        while len(batch) < size:
            counts = co.tally(study.get_trials(deepcopy=False), self.s.max_retries)
            if counts.done + counts.running >= target:
                break
            trial = co.claim_next(study)
            if trial is None and self.grid is None:
                trial = study.ask()
                co.mark_owned(study, private.trial_id_of(trial))
            if trial is None:
                break
            trials = study.get_trials(deepcopy=False)
            if co.counted_position(trials, trial.number, self.s.max_retries) >= target:
                # another worker claimed the last slot at the same moment
                co.end_trial(study, trial.number, "not run: the study's budget was reached by other workers", co.VOID)
                break
            batch.append(trial)
        return batch

    def _run_batch(self, study: optuna.Study, batch: list[optuna.Trial], beat: co.Heartbeat) -> None:
        beat.trial_ids.update(private.trial_id_of(t) for t in batch)
        self.batch_errors = []
        try:
            returns = self.launcher.launch([self._overrides(trial) for trial in batch], initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(batch, returns):
                self._tell(study, trial, ret)
        except BaseException as err:
            self._abandon(study, batch, err)
            raise
        finally:
            beat.trial_ids.difference_update(private.trial_id_of(t) for t in batch)
        self._check_failure_rate(len(self.batch_errors), len(batch), "of the batch")

    def _check_failure_rate(self, failed: int, of: int, what: str) -> None:
        """Stops when the share of failed trials exceeds max_failure_rate: of each batch on its own
        (the stock plugin), or of all this run's trials so far (``failure_rate_over: sweep``)."""
        if self.s.failure_rate_over == "sweep":
            failed, of, what = self.failures, max(self.attempts, 1), "so far"
        if failed and failed / of > self.s.max_failure_rate:
            last = self.batch_errors[-1] if self.batch_errors else "?"
            raise BridgeEvalError(
                f"sweep stopped: {failed} of {of} trials {what} failed (failure rate {failed / of:.2f} > "
                f"max_failure_rate {self.s.max_failure_rate}); last: {last}"
            )

    def _overrides(self, trial: optuna.Trial) -> list[str]:
        values = {name: param.suggest(trial) for name, param in self.space.items()}
        if self.extend is not None:  # the stock custom_search_space hook: it may suggest more params
            self.extend(self.config, trial)
            values.update({self._appendable(k): v for k, v in trial.params.items() if k not in values})
        job = [*self.fixed, *(as_override(k, v) for k, v in values.items())]
        trial.set_user_attr("overrides", job)  # reruns the trial's configuration: train.py + these
        return job + self._identity(trial)

    def _appendable(self, key: str) -> str:
        """A key the hook added that the app's config lacks is appended (``+w``), as it must be."""
        if key.startswith(("+", "~")) or self.config is None:
            return key
        missing = object()
        return key if OmegaConf.select(self.config, key, default=missing) is not missing else f"+{key}"

    def _identity(self, trial: optuna.Trial) -> list[str]:
        """The job's link to its trial (for pruning and per-epoch reports): only for apps that declare
        a ``sweep_trial`` node (bridgeeval's train.yaml) and a storage the job can open."""
        if self.url is None or self.config is None or "sweep_trial" not in self.config:
            return []
        identity = {"storage": self.url, "study_name": self.study_name, "number": trial.number}
        return [as_override(f"sweep_trial.{k}", v) for k, v in identity.items()]

    def _objective_name(self) -> str:
        """What the value is: the app's ``optimized_metric`` (train.yaml), else "value"."""
        name = self.config.get("optimized_metric") if self.config is not None else None
        if name and OmegaConf.select(self.config, "cv.select_epoch", default=False):
            return f"{name}@best_epoch"
        return str(name) if name else "value"

    def _tell(self, study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> None:
        self.attempts += 1
        output_dir = _output_dir(ret)
        if output_dir:
            trial.set_user_attr("output_dir", output_dir)
            metrics = _read_metrics(output_dir)
            if metrics:
                trial.set_user_attr("metrics", metrics)
        if ret.status == JobStatus.COMPLETED:
            values, error = _objective_values(ret.return_value, len(self.directions))
            if values is not None:
                study.tell(trial, values if len(values) > 1 else values[0])
                shown = ", ".join(f"{v:.6g}" for v in values)
                log.info("trial %d done in %s: %s = %s %s; best: %s", trial.number, _took(trial),
                         self._objective_name(), shown, trial.params, _best_text(study, short=True))
                return
        elif isinstance(ret._return_value, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned after %s %s", trial.number, _took(trial), trial.params)
            return
        else:
            err = ret._return_value
            error = f"{type(err).__name__}: {err}"
        self.failures += 1
        self.batch_errors.append(error.splitlines()[0] if error else "")
        trial.set_user_attr("error", error[:2000])
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, error.splitlines()[0] if error else "")

    def _abandon(self, study: optuna.Study, batch: list[optuna.Trial], err: BaseException) -> None:
        """Stopped or crashed mid-batch: trials still in flight are failed as lost and requeued. The
        driver's stop (a signal, sbatch refusing the batch, a job that would never start) is not the
        trials' failure: it uses up none of their attempts, so no point is ever given up that way."""
        # Lightning turns Ctrl-C into SystemExit(1): the signal, not the exception, tells.
        signalled = isinstance(err, (KeyboardInterrupt, SweepInterrupted)) or (self._stop and self._stop.received)
        reason = (
            "interrupted"
            if signalled
            else f"sweep stopped: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        )
        if isinstance(err, OSError):  # the storage itself cannot be written: a resume repairs them
            return
        for trial in batch:
            try:
                co.end_trial(study, trial.number, reason, co.LOST, counted=False)
            except Exception as exc:  # noqa: BLE001 - best effort while stopping
                log.warning("could not mark trial %d failed: %s", trial.number, exc)
        try:
            self.repair(study)
        except Exception as exc:  # noqa: BLE001 - a later run repairs what this one could not
            log.warning("could not requeue the trials in flight: %s", exc)


def optimization_results(study: optuna.Study) -> dict:
    """What the stock plugin writes to ``optimization_results.yaml``: the best params and value,
    or, for several objectives, the Pareto-optimal trials' params and values."""
    if len(study.directions) > 1:
        solutions = [{"number": t.number, "params": dict(t.params), "values": list(t.values)} for t in study.best_trials]
        return {"name": "optuna", "solutions": solutions}
    try:
        best = study.best_trial
    except ValueError:
        return {"name": "optuna", "best_params": None, "best_value": None}
    return {"name": "optuna", "best_params": dict(best.params), "best_value": best.value}


def worker_seed(seed: int | None, created: bool) -> int | None:
    """The study's creator samples with the study seed; every other worker with a seed derived from
    it and the worker's identity, so parallel workers never draw the same start-up points."""
    if seed is None or created:
        return seed
    return (int(seed) + 1 + zlib.crc32(co.owner_tag().encode())) % 2**32


def _directions(direction: Any) -> list[optuna.study.StudyDirection]:
    """One direction or a list of them (several objectives), by name."""
    names = list(direction) if isinstance(direction, (list, tuple)) else [direction]
    if not names:
        raise BridgeEvalError("direction: empty list; give minimize or maximize per objective")
    out = []
    for name in names:
        name = getattr(name, "name", name)  # the stock plugin's Direction enum
        try:
            out.append(optuna.study.StudyDirection[str(name).upper()])
        except KeyError:
            raise BridgeEvalError(f"direction: expected minimize or maximize, got {name!r}") from None
    return out


def _custom_search_space(path: str | None):
    """The ``custom_search_space`` function: ``module.function``, or (as the stock examples write)
    ``.file.function`` for a file beside the app's script, whose name may hold dashes."""
    if not path:
        return None
    from hydra.utils import get_method

    try:
        return _relative_function(path) if path.startswith(".") else get_method(path)
    except Exception as err:  # noqa: BLE001 - Hydra wraps import errors in its own types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BridgeEvalError(f"custom_search_space={path!r}: cannot import it ({first})") from None


def _relative_function(path: str):
    import importlib.util
    import sys

    module, _, name = path[1:].rpartition(".")
    file = Path(sys.argv[0]).resolve().parent / f"{module.replace('.', '/')}.py"
    main = sys.modules.get("__main__")
    if main is not None and Path(getattr(main, "__file__", "") or "").resolve() == file:
        return getattr(main, name)  # the app's own script: not executed a second time
    spec = importlib.util.spec_from_file_location(module.replace("-", "_"), file)
    if spec is None or spec.loader is None or not file.is_file():
        raise ImportError(f"no file {file}")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return getattr(loaded, name)


def _objective_values(value: Any, n_objectives: int) -> tuple[list[float] | None, str | None]:
    """The job's return as the study's values (stock: ``float()`` of it, or of each item for
    several objectives); or why it cannot be."""
    if n_objectives == 1:
        number = _as_float(value)
        if number is None or not math.isfinite(number):
            return None, f"objective is {value!r}, not a finite number"
        return [number], None
    try:
        numbers = [_as_float(v) for v in value]
    except TypeError:
        return None, f"objectives: expected {n_objectives} numbers, got {value!r}"
    if len(numbers) != n_objectives or any(n is None or not math.isfinite(n) for n in numbers):
        return None, f"objectives: expected {n_objectives} finite numbers, got {value!r}"
    return numbers, None


class _StopSignals:
    """SIGINT and SIGTERM stop the sweep between steps, with the trials in flight requeued.

    A signal raises :class:`SweepInterrupted` (Ctrl-C: KeyboardInterrupt) at once, and is also
    remembered, because Python drops exceptions raised inside finalizers and weakref callbacks
    ("Exception ignored in ..."): ``check`` raises it again at the next step."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        self.received = signum
        raise _exception(signum)

    def check(self) -> None:
        if self.received is not None:
            raise _exception(self.received)

    def sleep(self, seconds: float) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.check()
            time.sleep(min(0.2, max(0.0, deadline - time.time())))

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)


def _exception(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return SweepInterrupted(signal.Signals(signum).name)


def _as_float(value: Any) -> float | None:
    """Whatever a task returns that ``float()`` takes (numbers, numpy scalars, 0-d tensors)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same_distribution(a: str, b: str) -> bool:
    from optuna.distributions import json_to_distribution

    return json_to_distribution(a) == json_to_distribution(b)


def _first_free_job_number(config) -> int:
    """Past the numbered job folders already in the sweep folder: a resume into the same
    ``hydra.sweep.dir`` starts new folders instead of meeting its earlier trials' (which a job
    would refuse, bridgeeval.runfolder)."""
    if config is None or "hydra" not in config:
        return 0
    try:
        folder = Path(str(config.hydra.sweep.dir))
        taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    except Exception:  # noqa: BLE001 - an unresolvable or unreadable folder: Hydra says so when it launches
        return 0
    return max(taken, default=-1) + 1


def _output_dir(ret: JobReturn) -> str | None:
    try:
        return str(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # noqa: BLE001 - launchers differ in what they return
        return None


def _read_metrics(output_dir: str) -> dict | None:
    record = try_read_job_record(Path(output_dir))
    return None if record is None else {k: v for k, v in record.values.items() if v is not None}


def _best_text(study: optuna.Study, short: bool = False) -> str:
    if len(study.directions) > 1:
        return f"{len(study.best_trials)} Pareto-optimal trial(s)"
    try:
        best = study.best_trial
    except ValueError:
        return "none yet"
    if short:
        return f"{best.value:.6g} (trial {best.number})"
    return f"trial {best.number} value {best.value:.6g} params {best.params}"


def _took(trial: optuna.Trial) -> str:
    """The trial's wall time so far (from Optuna's start stamp, so any worker's clock)."""
    started = trial.datetime_start
    if started is None:
        return "?"
    return f"{(datetime.datetime.now() - started).total_seconds():.1f} s"
