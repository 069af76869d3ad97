"""What lets many sweep processes share one study safely (journal or PostgreSQL storage; one
process on SQLite, whose claims are not atomic).

* Work queue: grid points and requeued trials wait as WAITING trials; a worker claims one by moving
  it to RUNNING, which journal and PostgreSQL storages do atomically (one claimant succeeds).
  Retries are claimed before fresh points.
* Liveness: a thread beats on each trial in flight. A RUNNING trial is stale when its process on
  this host is gone, its owner's Slurm job has ended, or it has not beaten for the grace period.
* Repair, under a study-wide lock kept in the storage itself: stale trials are failed as *lost*,
  lost trials (and failed ones, on request) are requeued once per attempt, and grid points with no
  trial at all (a creator killed while filling, a trial voided over budget) are enqueued. Every
  worker repairs at start and between batches, so nothing is lost whenever a process is killed,
  and the lock keeps concurrent repairs from enqueueing a point twice.
* Counting: a trial is done when it completed, was pruned, or failed for good (its objective
  failed, or it was lost more than ``max_retries`` times). A lost trial awaiting its retry, a
  superseded one and a *void* one (claimed but never run) are not counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from bridgeeval.sweeps import optuna_private as private

log = logging.getLogger(__name__)
HEARTBEAT = "bridgeeval:heartbeat"  # system attr: time of the owner's last beat
OWNER = "bridgeeval:owner"  # system attr: host:pid of the process running the trial
OWNER_JOB = "bridgeeval:owner_slurm_job"  # system attr: that process's own Slurm job, if any
LOST = "bridgeeval:lost"  # system attr of a failed trial that ended without a result
VOID = "bridgeeval:void"  # system attr of a failed trial that never ran
# System attr of a lost trial whose loss was not its own doing (the driver stopped: Ctrl-C, SIGTERM,
# sbatch refusing the batch, a job that would never start): requeued without using up an attempt.
UNCOUNTED = "bridgeeval:uncounted"
SPACE_ATTR = "bridgeeval:space"  # study user attr: the search space it was created with
RETRY_OF = "bridgeeval:retry_of"  # user attr of a retry: the number of the trial it reruns
ATTEMPT = "bridgeeval:attempt"  # user attr of a retry: 2 for the first retry, ...
PRUNER_ATTR = "bridgeeval:pruner"  # study user attr: the sweep's pruner spec, read by each job
LOCK_PREFIX = "bridgeeval-lock:"  # lock studies: LOCK_PREFIX + study name + ":" + generation
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def own_slurm_job() -> str | None:
    """This process's Slurm job (``array_task`` form for array tasks), when it runs inside one."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def trial_id(study: optuna.Study, number: int) -> int:
    return private.trial_id(study, number)


def point_of(trial: FrozenTrial) -> dict:
    """The parameters a trial runs: the enqueued point (grid points, retries), else the suggested
    ones. The enqueued point comes first: a worker between two suggest calls holds a trial with
    only part of it in ``params``, and that part is no grid point (read so, it was enqueued again)."""
    return dict(trial.system_attrs.get("fixed_params") or trial.params or {})


def point_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


# -- what each trial counts as -------------------------------------------------------------------
@dataclass
class Tally:
    waiting: int = 0
    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0  # failed for good
    lost: int = 0  # lost, retry pending
    superseded: int = 0  # failed or lost, rerun by a later trial
    void: int = 0

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def kind_of(trial: FrozenTrial, retried: set[int], max_retries: int) -> str:
    """waiting, running, complete, pruned, failed, lost (retry pending), superseded or void."""
    if trial.state != TrialState.FAIL:
        return trial.state.name.lower()
    if trial.system_attrs.get(VOID):
        return "void"
    if trial.number in retried:
        return "superseded"
    if trial.system_attrs.get(LOST) and point_of(trial) and (
            trial.system_attrs.get(UNCOUNTED) or attempt_of(trial) <= max_retries):
        return "lost"
    return "failed"


def attempt_of(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get(ATTEMPT, 1))


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    return {int(t.user_attrs[RETRY_OF]) for t in trials if RETRY_OF in t.user_attrs}


def tally(trials: list[FrozenTrial], max_retries: int) -> Tally:
    counts, retried = Tally(), retried_numbers(trials)
    for trial in trials:
        kind = kind_of(trial, retried, max_retries)
        setattr(counts, kind, getattr(counts, kind) + 1)
    return counts


def counted_position(trials: list[FrozenTrial], number: int, max_retries: int) -> int:
    """How many done-or-running trials precede trial ``number``: its place in the budget."""
    retried = retried_numbers(trials)
    counted = ("running", "complete", "pruned", "failed")
    return sum(1 for t in trials if t.number < number and kind_of(t, retried, max_retries) in counted)


# -- claiming and owning ---------------------------------------------------------------------------
def claim_next(study: optuna.Study) -> optuna.Trial | None:
    """Moves one WAITING trial to RUNNING for this process (retries first); None when none is left."""
    storage = private.storage_of(study)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for frozen in sorted(waiting, key=lambda t: (RETRY_OF not in t.user_attrs, t.number)):
        try:
            tid = private.trial_id_of(frozen)
            if storage.set_trial_state_values(tid, state=TrialState.RUNNING):
                mark_owned(study, tid)
                return private.trial_handle(study, tid)
        except UpdateFinishedTrialError:
            continue
    return None


def mark_owned(study: optuna.Study, tid: int) -> None:
    storage = private.storage_of(study)
    storage.set_trial_system_attr(tid, OWNER, owner_tag())
    storage.set_trial_system_attr(tid, HEARTBEAT, time.time())
    job = own_slurm_job()
    if job:
        storage.set_trial_system_attr(tid, OWNER_JOB, job)


def end_trial(study: optuna.Study, number: int, reason: str, flag: str, counted: bool = True) -> bool:
    """Fails a RUNNING trial with ``reason``, flagged LOST (to be rerun) or VOID (never ran); a
    loss not ``counted`` (the driver's stop, not the trial's failure) uses up no attempt.
    False when another process finished it first (only one process makes the transition)."""
    storage, tid = private.storage_of(study), trial_id(study, number)
    try:
        storage.set_trial_user_attr(tid, "error", reason[:2000])
        storage.set_trial_system_attr(tid, flag, reason[:200])
        if not counted:
            storage.set_trial_system_attr(tid, UNCOUNTED, True)
        storage.set_trial_state_values(tid, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True


class Heartbeat:
    """Records a heartbeat on every trial this process has in flight, every ``interval`` seconds."""

    def __init__(self, study: optuna.Study, interval: float):
        self.study, self.interval = study, interval
        self.trial_ids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridgeeval-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        storage = private.storage_of(self.study)
        while not self._stop.wait(self.interval):
            for tid in list(self.trial_ids):
                try:
                    storage.set_trial_system_attr(tid, HEARTBEAT, time.time())
                except (UpdateFinishedTrialError, KeyError):
                    self.trial_ids.discard(tid)
                except Exception as err:  # noqa: BLE001 - a missed beat must not kill the sweep
                    log.debug("heartbeat of trial %d failed: %s", tid, err)


# -- liveness ----------------------------------------------------------------------------------------
def stale_reason(
    frozen: FrozenTrial, grace_period: float, now: float | None = None, slurm: dict | None = None
) -> str | None:
    """Why a RUNNING trial has no live owner, or None while it may still be running. ``slurm``
    holds the Slurm states of owners' jobs (:func:`owner_job_states`), asked once for all trials."""
    now = time.time() if now is None else now
    owner = frozen.system_attrs.get(OWNER, "")
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
        return f"no heartbeat: its worker {owner} is gone"
    job = frozen.system_attrs.get(OWNER_JOB)
    state = (slurm or {}).get(job) if job and host != socket.gethostname() else None
    if state is not None and state.finished:
        return f"no heartbeat: its worker's Slurm job {job} ended ({state.name})"
    beat = frozen.system_attrs.get(HEARTBEAT)
    if beat is None:
        beat = (frozen.datetime_start or datetime.now()).timestamp()
    if now - float(beat) > grace_period:
        return f"no heartbeat from its worker {owner or '?'} for {now - float(beat):.0f} s"
    return None


def owner_job_states(trials: list[FrozenTrial]) -> dict:
    """Slurm states of the jobs whose workers, on other hosts, run the RUNNING trials (one query)."""
    here = socket.gethostname()
    jobs = [
        t.system_attrs[OWNER_JOB]
        for t in trials
        if t.state == TrialState.RUNNING
        and OWNER_JOB in t.system_attrs
        and str(t.system_attrs.get(OWNER, "")).rpartition(":")[0] != here
    ]
    if not jobs:
        return {}
    from bridgeeval.sweeps.slurm import cached_job_states

    return cached_job_states(jobs)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the study-wide lock -------------------------------------------------------------------------------
class StudyLock:
    """Mutual exclusion among the processes of one study, on any storage, through atomic study
    creation: holding generation g means having created the study ``bridgeeval-lock:<name>:<g>``
    while no higher generation exists. A holder that died (its pid gone on this host) or stopped
    beating for ``stale_after`` seconds is superseded by generation g+1; released and superseded
    generations are deleted, so the storage keeps one lock study per sweep study."""

    def __init__(self, study: optuna.Study, stale_after: float = 60.0, timeout: float = 600.0):
        self.storage, self.name = private.storage_of(study), study.study_name
        self.stale_after, self.timeout = stale_after, timeout
        self.prefix = f"{LOCK_PREFIX}{self.name}:"
        self.held: str | None = None
        self._first_seen: dict[str, float] = {}

    def _generations(self) -> dict[int, optuna.study.FrozenStudy]:
        out = {}
        for s in self.storage.get_all_studies():
            if s.study_name.startswith(self.prefix) and s.study_name[len(self.prefix) :].isdigit():
                out[int(s.study_name[len(self.prefix) :])] = s
        return out

    def _free(self, study: optuna.study.FrozenStudy) -> bool:
        attrs = study.user_attrs
        if attrs.get("released"):
            return True
        if "since" not in attrs:  # just created, its owner not written yet; free if it stays so
            first_seen = self._first_seen.setdefault(study.study_name, time.time())
            return time.time() - first_seen > self.stale_after
        host, _, pid = str(attrs.get("owner", "")).rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
            return True
        return time.time() - float(attrs["since"]) > self.stale_after

    def __enter__(self) -> "StudyLock":
        deadline = time.time() + self.timeout
        with _quiet_storage():
            return self._acquire(deadline)

    def _acquire(self, deadline: float) -> "StudyLock":
        while True:
            generations = self._generations()
            top = max(generations, default=-1)
            if top < 0 or self._free(generations[top]):
                if self._try(top + 1):
                    return self
            if time.time() > deadline:
                holder = generations[top].user_attrs.get("owner", "?") if top >= 0 else "?"
                from bridgeeval.errors import BridgeEvalError

                raise BridgeEvalError(
                    f"study {self.name!r}: its lock is held by {holder} for over {self.timeout:.0f} s"
                )
            time.sleep(0.2)

    def _try(self, generation: int) -> bool:
        name = f"{self.prefix}{generation}"
        try:
            sid = self.storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], name)
        except DuplicatedStudyError:
            return False
        try:
            self.storage.set_study_user_attr(sid, "owner", owner_tag())
            self.storage.set_study_user_attr(sid, "since", time.time())
        except KeyError:  # judged stale and deleted by another process meanwhile
            return False
        newer = [g for g in self._generations() if g > generation]
        if newer:  # a slower process recreated an old generation: back off
            self._delete(name)
            return False
        self.held = name
        for old, study in self._generations().items():
            if old < generation:
                self._delete(study.study_name)
        return True

    def _delete(self, name: str) -> None:
        try:
            self.storage.delete_study(self.storage.get_study_id_from_name(name))
        except KeyError:
            pass

    def __exit__(self, *exc) -> None:
        if self.held is None:
            return
        try:
            sid = self.storage.get_study_id_from_name(self.held)
            self.storage.set_study_user_attr(sid, "released", True)
        except KeyError:
            pass
        self.held = None


@contextlib.contextmanager
def _quiet_storage():
    """Optuna's storages log every study they create or delete: not worth a line per lock."""
    names = ("optuna.storages.journal._storage", "optuna.storages._rdb.storage", "optuna.storages._cached_storage")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def is_lock_study(name: str) -> bool:
    return name.startswith(LOCK_PREFIX)


# -- repair --------------------------------------------------------------------------------------------
def needs_repair(trials: list[FrozenTrial], grid: list[dict] | None, grace_period: float, max_retries: int) -> bool:
    """A cheap check, without the lock, whether :func:`repair` has anything to do."""
    retried, slurm = retried_numbers(trials), owner_job_states(trials)
    for t in trials:
        if t.state == TrialState.RUNNING and stale_reason(t, grace_period, slurm=slurm):
            return True
        if kind_of(t, retried, max_retries) == "lost":
            return True
    return bool(grid) and bool(missing_points(trials, grid, max_retries))


def missing_points(
    trials: list[FrozenTrial], grid: list[dict], max_retries: int, retry_failed: bool = False
) -> list[dict]:
    """Grid points with no waiting, running, finished, lost or (unless ``retry_failed``) failed trial."""
    retried = retried_numbers(trials)
    covering = {"waiting", "running", "complete", "pruned", "lost"} | (set() if retry_failed else {"failed"})
    have = {point_key(point_of(t)) for t in trials if kind_of(t, retried, max_retries) in covering}
    return [p for p in grid if point_key(p) not in have]


def repair(
    study: optuna.Study,
    grid: list[dict] | None,
    grace_period: float,
    max_retries: int,
    retry_failed: bool = False,
) -> list[str]:
    """Under the study lock: fail stale trials as lost, requeue lost (and, with ``retry_failed``,
    failed) trials, enqueue missing grid points. Returns what it did, one line per action."""
    done: list[str] = []
    with StudyLock(study):
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        slurm = owner_job_states(running)
        for t in running:
            reason = stale_reason(t, grace_period, slurm=slurm)
            if reason and end_trial(study, t.number, f"lost: {reason}", LOST):
                done.append(f"trial {t.number} lost ({reason})")
        trials = study.get_trials(deepcopy=False)
        retried = retried_numbers(trials)
        for t in trials:
            kind = kind_of(t, retried, max_retries)
            if kind == "lost" or (retry_failed and kind == "failed" and point_of(t)):
                attempt = attempt_of(t) + (0 if t.system_attrs.get(UNCOUNTED) else 1)
                study.enqueue_trial(point_of(t), user_attrs={RETRY_OF: t.number, ATTEMPT: attempt})
                done.append(f"trial {t.number} requeued (attempt {attempt})")
        if grid:
            missing = missing_points(study.get_trials(deepcopy=False), grid, max_retries)
            for point in missing:
                study.enqueue_trial(point)
            if missing:
                done.append(f"enqueued {len(missing)} of {len(grid)} grid points")
    return done
