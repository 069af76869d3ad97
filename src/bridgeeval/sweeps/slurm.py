"""Following Slurm jobs one by one: what ``squeue`` (or ``sacct``) says of them, and their results.

submitit's own waiting trusts ``sacct`` alone: without accounting it waits forever, a job that
Slurm will never start waits forever, and one cancelled job fails its whole batch. Here each job of
a batch is followed on its own: a result is taken as soon as its pickle exists, a job that ended
without one (cancelled, timed out, preempted, node failure, killed) is reported *lost* so that its
trial is rerun, and a job pending for a reason Slurm will never resolve stops the sweep with one
line naming the reason and the request.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from bridgeeval.errors import BridgeEvalError

log = logging.getLogger(__name__)
# Ended: no result will come unless its pickle exists.
TERMINAL = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
    "TIMEOUT",
}
# Pending reasons that no waiting resolves: the request exceeds what the partition, its nodes,
# the account or the QOS allow (squeue's reason codes; see `man squeue`, JOB REASON CODES).
NEVER_STARTS = {
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxGRESPerJob",
    "QOSMaxMemoryPerJob",
    "QOSMaxNodePerJobLimit",
    "QOSMaxWallDurationPerJobLimit",
    "AssocMaxCpuPerJobLimit",
    "AssocMaxMemPerJob",
    "AssocMaxNodesPerJob",
    "AssocMaxWallDurationPerJobLimit",
    "DependencyNeverSatisfied",
}
# Routine and temporary on a real cluster: drained or down nodes and maintenance reservations
# (ReqNodeNotAvail, "Reserved for maintenance"), a partition taken down. follow() logs the reason
# once and waits, up to ``pending_limit`` seconds, then stops with one line. Resources and Priority
# (the queue itself) are waited for without a limit.
ROUTINE_WAITS = {"ReqNodeNotAvail", "NodeDown", "PartitionDown", "PartitionInactive", "Reservation",
                 "ReservationDeleted",
                 # squeue's words for ReqNodeNotAvail when every node of the partition is drained
                 "Nodes required for job are DOWN"}


@dataclass(frozen=True)
class JobState:
    name: str  # PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.name in TERMINAL

    @property
    def never_starts(self) -> bool:
        return self.name == "PENDING" and self._code in NEVER_STARTS

    @property
    def routine_wait(self) -> bool:
        return self.name == "PENDING" and self._code in ROUTINE_WAITS

    @property
    def _code(self) -> str:
        return self.reason.split(",")[0].strip("()")


def _run(command: list[str]) -> subprocess.CompletedProcess | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def job_states(job_ids: Sequence[str]) -> dict[str, JobState] | None:
    """States of jobs or array tasks (``123`` or ``123_4``) by id, from squeue, then sacct for the
    ones squeue has forgotten; ids neither knows are absent. None when squeue gave no answer (a
    controller that timed out): no answer is not "job gone"."""
    if not job_ids:
        return {}
    masters = sorted({str(j).split("_")[0] for j in job_ids})
    states: dict[str, JobState] = {}
    for master in masters:  # one call per array: squeue fails for a whole list when one id is purged
        proc = _run(["squeue", "-h", "-r", "-t", "all", "-j", master, "-o", "%i|%T|%r"])
        if proc is None or (proc.returncode != 0 and "Invalid job id" not in proc.stderr):
            return None
        for line in proc.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                states[parts[0]] = JobState(parts[1], parts[2])
    unknown = [str(j) for j in job_ids if str(j) not in states]
    if unknown:  # purged from squeue (MinJobAge): accounting, where there is any, still knows
        proc = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(unknown)])
        for line in (proc.stdout if proc is not None and proc.returncode == 0 else "").splitlines():
            parts = line.strip().split("|")
            if len(parts) == 2:
                states.setdefault(parts[0], JobState(parts[1].split()[0] if parts[1] else "UNKNOWN"))
    return states


_CACHE: dict[str, tuple[float, JobState | None]] = {}


def cached_job_states(job_ids: Sequence[str], max_age: float = 30.0) -> dict[str, JobState]:
    """:func:`job_states` for liveness checks, asked at most once per ``max_age`` seconds per job,
    so that many waiting workers do not flood the controller."""
    now = time.time()
    stale = [j for j in dict.fromkeys(map(str, job_ids)) if now - _CACHE.get(j, (-1e18, None))[0] > max_age]
    if stale:
        answer = job_states(stale)
        if answer is not None:
            for j in stale:
                _CACHE[j] = (now, answer.get(j))
    return {j: _CACHE[j][1] for j in map(str, job_ids) if j in _CACHE and _CACHE[j][1] is not None}


@dataclass
class Outcome:
    """How one job of a batch ended: ``result`` (the job's own return, which may itself be a
    failure inside the job), ``error`` (submitit could not run it) or ``lost`` (no result at all)."""

    index: int
    job_id: str
    result: Any = None
    error: str | None = None
    lost: str | None = None


class NeverStarts(Exception):
    def __init__(self, job_id: str, reason: str, message: str | None = None):
        super().__init__(message or f"Slurm job {job_id} will never start: pending with reason {reason}")
        self.job_id, self.reason = job_id, reason


def follow(
    jobs: Sequence[Any],
    request: str = "",
    poll_interval: float = 5.0,
    result_grace: float = 60.0,
    quick_grace: float = 5.0,
    pending_limit: float = 3600.0,
) -> Iterator[Outcome]:
    """Yields each job's outcome as it ends (submitit's Slurm jobs); use it closed
    (``contextlib.closing``), so that a caller leaving early (an exception, a signal) cancels the
    jobs that have no result yet. A job that will never start cancels the batch and raises a
    one-line :class:`BridgeEvalError` naming Slurm's reason and ``request``. (:class:`Follower`
    says how each job is judged.)
    """
    follower = Follower(request, poll_interval, result_grace, quick_grace, pending_limit)
    follower.add(jobs)
    settled = False
    try:
        while follower.in_flight:
            yield from follower.poll()
            if follower.in_flight:
                time.sleep(poll_interval)
        settled = True
    except BridgeEvalError:
        settled = True  # poll cancelled the jobs
        raise
    finally:
        if not settled:
            follower.cancel()


class Follower:
    """Follows a changing set of jobs: ``add`` them as they are submitted, ``poll`` (one round of
    squeue, at most every ``poll_interval`` seconds) for those that ended. A sweep keeps its slots
    busy with it: a slot freed by one job takes the next trial at once, whatever its siblings do.

    A job seen ended without a result pickle is waited for ``quick_grace`` seconds when Slurm says
    it was cancelled, timed out or failed, and ``result_grace`` seconds otherwise (shared file
    systems show a new file late), then reported lost. A job pending for a routine reason (drained
    nodes, a maintenance reservation: ``ROUTINE_WAITS``) is waited for up to ``pending_limit``
    seconds, then treated as one that will never start: ``poll`` then cancels every job it follows
    and raises a one-line :class:`BridgeEvalError` naming Slurm's reason and ``request``.
    """

    def __init__(self, request: str = "", poll_interval: float = 5.0, result_grace: float = 60.0,
                 quick_grace: float = 5.0, pending_limit: float = 3600.0):
        self.request, self.poll_interval = request, poll_interval
        self.result_grace, self.quick_grace, self.pending_limit = result_grace, quick_grace, pending_limit
        self.jobs: dict[int, Any] = {}  # by the index add() gave, until their outcome is known
        self._next = 0
        self._ended_at: dict[int, float] = {}
        self._reasons: dict[int, str] = {}
        self._waiting_since: dict[int, float] = {}  # since when a job has pended for a routine reason
        self._never: NeverStarts | None = None

    @property
    def in_flight(self) -> int:
        return len(self.jobs)

    def add(self, jobs: Sequence[Any]) -> list[int]:
        """Follows ``jobs`` too; returns their indices (as their outcomes will carry)."""
        indices = list(range(self._next, self._next + len(jobs)))
        self._next += len(jobs)
        self.jobs.update(zip(indices, jobs))
        return indices

    def poll(self) -> list[Outcome]:
        """The outcomes of the jobs that ended since the last call (none when squeue gave no answer).
        A job that will never start is raised at the call after the outcomes of its round."""
        if self._never is None:
            outcomes = self._poll()
            if outcomes or self._never is None:
                return outcomes
        err, self._never = self._never, None
        cancel(list(self.jobs.values()))
        self.jobs.clear()
        raise BridgeEvalError(f"{err}; request: {self.request}")

    def cancel(self) -> None:
        """Cancels the jobs still followed that have no result yet (a caller leaving early)."""
        cancelled = cancel(list(self.jobs.values()))
        self.jobs.clear()
        if cancelled:
            log.warning("cancelled Slurm jobs %s", ", ".join(cancelled))

    def _poll(self) -> list[Outcome]:
        states = job_states([j.job_id for j in self.jobs.values()])
        if states is None:  # the controller did not answer: nothing is known, nothing is lost
            log.warning("squeue gave no answer; asking again later")
            return []
        outcomes = []
        for index, job in list(self.jobs.items()):
            try:
                outcome = self._check(index, job, states.get(str(job.job_id)))
            except NeverStarts as err:
                self._never = self._never or err
                continue
            if outcome is not None:
                del self.jobs[index]
                outcomes.append(outcome)
        return outcomes

    def _check(self, index: int, job: Any, state: JobState | None) -> Outcome | None:
        if _result_ready(job):
            return _read(index, job)
        if state is not None and state.never_starts:
            raise NeverStarts(job.job_id, state.reason)
        self._watch_routine_wait(index, job, state)
        if state is not None and state.name == "PENDING" and self._reasons.get(index) != state.reason:
            self._reasons[index] = state.reason
            routine = (f"; waiting up to hydra.launcher.pending_limit={self.pending_limit:g} s"
                       if state.routine_wait else "")
            log.info("Slurm job %s pending%s%s", job.job_id,
                     f" ({state.reason})" if state.reason not in ("", "None") else "", routine)
        if state is not None and not state.finished:
            self._ended_at.pop(index, None)  # requeued by Slurm (preemption): running again
            return None
        first = self._ended_at.setdefault(index, time.time())
        grace = self.quick_grace if state is not None and state.name not in ("COMPLETED", "UNKNOWN") else self.result_grace
        if time.time() - first < grace:
            return None
        what = state.name if state is not None else "unknown to squeue and sacct"
        why = "hit its time limit" if what == "TIMEOUT" else "ended without a result"
        what = exit_details(str(job.job_id)) or what
        return Outcome(index, str(job.job_id), lost=f"Slurm job {job.job_id} {why} ({what})")

    def _watch_routine_wait(self, index: int, job: Any, state: JobState | None) -> None:
        if state is None or not state.routine_wait:
            self._waiting_since.pop(index, None)
            return
        waited = time.time() - self._waiting_since.setdefault(index, time.time())
        if waited > self.pending_limit:
            raise NeverStarts(job.job_id, state.reason, (
                f"Slurm job {job.job_id} pending for {waited:.0f} s with reason {state.reason} "
                f"(drained or down nodes, or a maintenance reservation), past "
                f"hydra.launcher.pending_limit={self.pending_limit:g} s"))


def exit_details(job_id: str, tries: int = 3, pause: float = 2.0) -> str | None:
    """How a job ended, from accounting (None without it): its state, exit code and signal.

    A step's end can reach accounting after its job's (seen under load: "FAILED, exit code 9" with
    no signal yet), so a failure with no signal on record is read again a few times."""
    for attempt in range(tries):
        proc = _run(["sacct", "-n", "-P", "-o", "JobID,State,ExitCode,DerivedExitCode", "-j", job_id])
        rows = [ln.split("|") for ln in proc.stdout.splitlines()] if proc is not None and proc.returncode == 0 else []
        job = next((r for r in rows if len(r) == 4 and r[0] == job_id), None)
        if job is None:
            return None
        derived = _step_signal(job[3], [r[2] for r in rows if len(r) == 4 and r[0].startswith(f"{job_id}.")])
        settled = not job[1].startswith("FAILED") or derived.partition(":")[2] not in ("", "0")
        if settled or attempt == tries - 1:
            return describe_exit(job[1], job[2], derived)
        time.sleep(pause)
    return None


def _step_signal(derived: str, step_codes: list[str]) -> str:
    """The job's derived exit code, or a step's ``code:signal`` where only the step has one on record."""
    if derived.partition(":")[2] not in ("", "0"):
        return derived
    return next((c for c in step_codes if c.partition(":")[2] not in ("", "0")), derived)


def describe_exit(state: str, exit_code: str, derived: str) -> str:
    """sacct's ``State|ExitCode|DerivedExitCode`` in words; an out-of-memory end named as such.

    Example (a step killed by SIGKILL, as Slurm 22.05 records it):
        >>> describe_exit("FAILED", "9:0", "0:9")
        'FAILED, exit code 9, a step killed by signal 9 (SIGKILL, often the out-of-memory killer: ask for more memory, hydra.launcher.mem_gb or mem_per_cpu)'
        >>> describe_exit("OUT_OF_MEMORY", "0:125", "0:0")
        'OUT_OF_MEMORY, exit code 0, signal 125: out of memory (ask for more: hydra.launcher.mem_gb or mem_per_cpu)'
    """
    state = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0"
    code, _, sig = exit_code.partition(":")
    _, _, step_sig = derived.partition(":")
    parts = [state, f"exit code {code}"] if code else [state]
    if sig not in ("", "0"):
        parts.append(f"signal {sig}{_signal_name(sig)}")
    if step_sig not in ("", "0") and step_sig != sig:
        parts.append(f"a step killed by signal {step_sig}{_signal_name(step_sig)}")
    text = ", ".join(parts)
    advice = "hydra.launcher.mem_gb or mem_per_cpu"
    if state == "OUT_OF_MEMORY":
        return f"{text}: out of memory (ask for more: {advice})"
    if "9" in (sig, step_sig):
        return text.replace("signal 9 (SIGKILL)", f"signal 9 (SIGKILL, often the out-of-memory killer: ask for more memory, {advice})")
    return text


def _signal_name(number: str) -> str:
    try:
        return f" ({signal.Signals(int(number)).name})"
    except ValueError:  # Slurm's own codes beyond the signals (125: out of memory)
        return ""


def _result_ready(job: Any) -> bool:
    folder = job.paths.folder
    try:  # touching the folder refreshes NFS's attribute cache (as submitit does)
        folder.chmod(folder.stat().st_mode)
    except OSError:
        pass
    return job.paths.result_pickle.exists()


def _read(index: int, job: Any) -> Outcome:
    job_id = str(job.job_id)
    try:
        result = job.results()[0]
    except Exception as err:  # noqa: BLE001 - submitit's pickled failure outside the task itself
        # The time-limit signal can strike while Hydra still loads the job's config (seen under
        # load): the marker is then inside the trace, whose last line is submitit's log path.
        lost = _timed_out(job_id, str(err))
        return Outcome(index, job_id, lost=lost) if lost else Outcome(index, job_id, error=_failure_line(err))
    # submitit's time-limit handler raises inside the task, where Hydra records it as the job's failure
    failure = getattr(result, "_return_value", None) if str(getattr(result, "status", "")).endswith("FAILED") else None
    lost = _timed_out(job_id, f"{type(failure).__name__}: {failure}") if failure is not None else None
    return Outcome(index, job_id, lost=lost) if lost else Outcome(index, job_id, result=result)


def _timed_out(job_id: str, text: str) -> str | None:
    """submitit gives up on a job at its time limit with "Job not requeued because: ...": the job
    ended without a result (and the trial reruns), whatever the objective would have said."""
    line = next((ln.strip() for ln in text.splitlines() if "Job not requeued because" in ln), None)
    if line is None:
        return None
    return f"Slurm job {job_id} hit its time limit ({line})"


def _failure_line(err: Exception) -> str:
    """The exception line of submitit's failure text (its trace sits between dashed lines, and
    the log paths follow it), else its last line."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    dashes = [i for i, ln in enumerate(lines) if set(ln) == {"-"}]
    if len(dashes) >= 2 and dashes[1] - dashes[0] > 1:
        return lines[dashes[1] - 1]
    return lines[-1] if lines else type(err).__name__


def failed_return(overrides: Sequence[str], why: str) -> JobReturn:
    """A failed job's return, for a job that gave none (or whose failure happened outside the task)."""
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret._return_value = RuntimeError(why)
    return ret


def cancel(jobs: Sequence[Any]) -> list[str]:
    """Cancels the jobs that have no result yet; returns their ids."""
    cancelled = []
    for job in jobs:
        if _result_ready(job):
            continue
        try:
            job.cancel(check=False)
            cancelled.append(str(job.job_id))
        except Exception as err:  # noqa: BLE001 - best effort while stopping
            log.warning("could not cancel job %s: %s", job.job_id, err)
    return cancelled


def describe_request(params: dict) -> str:
    """The resources a launcher asks for, in sbatch's words."""
    parts = []
    for key, flag in (
        ("partition", "partition"),
        ("nodes", "nodes"),
        ("cpus_per_task", "cpus-per-task"),
        ("mem_gb", "mem"),
        ("gpus_per_node", "gpus-per-node"),
        ("timeout_min", "time"),
        ("account", "account"),
        ("qos", "qos"),
        ("constraint", "constraint"),
    ):
        value = params.get(key)
        if value in (None, "", 0) and key != "cpus_per_task":
            continue
        if value is None:
            continue
        if key == "mem_gb":  # as submitit asks: whole GB, else MB
            value = f"{value:g}G" if float(value) == int(value) else f"{int(float(value) * 1024)}M"
        if key == "timeout_min":
            value = f"{value}min"
        parts.append(f"--{flag}={value}")
    return " ".join(parts)
