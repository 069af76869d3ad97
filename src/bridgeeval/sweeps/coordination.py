"""What lets many sweeper processes share one study safely, on any storage.

* Work queue: grid points are enqueued once, as WAITING trials; a worker claims one by moving it to
  RUNNING, which every Optuna storage does atomically (only one claimant succeeds).
* Liveness: a thread records a heartbeat on each trial in flight. A RUNNING trial whose heartbeat
  is older than the grace period, or whose owner process on this host is gone, is stale: it is
  marked FAIL and its params are enqueued again, so a killed or preempted worker loses only the
  trials it had in flight, and those are rerun.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)
HEARTBEAT = "bridgeeval:heartbeat"
OWNER = "bridgeeval:owner"
RETRY_OF = "bridgeeval:retry_of"
PRUNER_ATTR = "bridgeeval:pruner"  # the sweep's pruner spec, read by each job
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_id(study: optuna.Study, number: int) -> int:
    storage = study._storage
    return storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def claim_waiting(study: optuna.Study) -> optuna.Trial | None:
    """Moves one WAITING trial to RUNNING for this process; None when the queue is empty."""
    storage = study._storage
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        tid = trial_id(study, frozen.number)
        try:
            if storage.set_trial_state_values(tid, state=TrialState.RUNNING):
                trial = optuna.Trial(study, tid)
                mark_owned(study, tid)
                return trial
        except UpdateFinishedTrialError:
            continue
    return None


def mark_owned(study: optuna.Study, tid: int) -> None:
    storage = study._storage
    storage.set_trial_system_attr(tid, OWNER, owner_tag())
    storage.set_trial_system_attr(tid, HEARTBEAT, time.time())


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
        storage = self.study._storage
        while not self._stop.wait(self.interval):
            for tid in list(self.trial_ids):
                try:
                    storage.set_trial_system_attr(tid, HEARTBEAT, time.time())
                except (UpdateFinishedTrialError, KeyError):
                    self.trial_ids.discard(tid)
                except Exception as err:  # noqa: BLE001 - a missed beat must not kill the sweep
                    log.debug("heartbeat of trial %d failed: %s", tid, err)


def is_stale(frozen: FrozenTrial, grace_period: float, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    owner = frozen.system_attrs.get(OWNER, "")
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
        return True  # its process on this host is gone: no need to wait out the grace period
    beat = frozen.system_attrs.get(HEARTBEAT)
    if beat is None:
        start = frozen.datetime_start or datetime.now()
        beat = start.timestamp()
    return now - float(beat) > grace_period


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale(study: optuna.Study, grace_period: float) -> list[int]:
    """Marks stale RUNNING trials FAIL and enqueues their params again; returns their numbers."""
    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    recovered = []
    for frozen in trials:
        if frozen.state != TrialState.RUNNING or not is_stale(frozen, grace_period):
            continue
        tid = trial_id(study, frozen.number)
        try:
            storage.set_trial_user_attr(tid, "error", "worker died or was preempted (no heartbeat)")
            storage.set_trial_state_values(tid, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another worker recovered it first
        if frozen.number not in retried and frozen.params:
            requeue(study, frozen)
        recovered.append(frozen.number)
    return recovered


def requeue(study: optuna.Study, frozen: FrozenTrial) -> None:
    """Puts a trial's params back in the queue (one retry per trial)."""
    study.enqueue_trial(dict(frozen.params), user_attrs={RETRY_OF: frozen.number})


def count(study: optuna.Study, states) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))
