"""Sweeps on a real Slurm cluster (Debian's slurm-wlm 22.05, one node on loopback, started here).

docs/sweeps.md's two ways (one driver with ``hydra/launcher=slurm``; N ``sbatch --array`` workers),
and what a cluster does to them: a cancelled array task, a worker killed with SIGKILL and
resubmitted, a request no node can satisfy, a driver stopped with SIGTERM, a cluster without
accounting. Each case checks the study through Optuna's API: one COMPLETE trial per grid point,
none lost, none run twice.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from slurm_cluster import SlurmCluster, missing_binaries
from sweep_helpers import FAST, REPO, chattr_works, completed_points, grid_params, study_of, sweep_cmd

from bridgeeval.sweeps import coordination as co

pytestmark = pytest.mark.slow
# Small jobs that fit the test node (2 CPUs, 4 GB), followed closely. Learning rates that train:
# with lr=0.01 the built-in set's map collapses and the exact k-NN of the collapsed outputs is slow.
LR = "0.001,0.0001"
LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.poll_interval=1",
    "hydra.launcher.result_grace=5",
]


@pytest.fixture(scope="module")
def cluster():
    missing = missing_binaries()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"Slurm is not installed ({', '.join(missing)}); .ci/run installs slurm-wlm")
        pytest.skip(
            f"Slurm binaries missing: {', '.join(missing)} (apt-get install slurm-wlm slurmdbd munge mariadb-server)"
        )
    with SlurmCluster() as running:
        yield running


def wait_for(condition, timeout: float = 240, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def training_trials(url: str, name: str = "s") -> list:
    """RUNNING trials whose job has reported at least one epoch."""
    try:
        running = study_of(url, name).get_trials(states=(TrialState.RUNNING,))
    except (KeyError, ValueError, OSError):
        return []
    return [t for t in running if t.intermediate_values]


def driver(tmp: Path, cluster: SlurmCluster, *args: str, accounting: bool = True) -> subprocess.Popen:
    return subprocess.Popen(
        sweep_cmd(tmp, *LAUNCHER, *args),
        cwd=REPO,
        env=cluster.client_env(accounting),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("bridgeeval:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def test_driver_keeps_a_batch_whose_sibling_was_cancelled_without_accounting(tmp_path, cluster):
    """docs/sweeps.md way 1 on a cluster without sacct: scancel of one array task loses only its trial."""
    url = f"journal:///{tmp_path}/j.log"
    proc = driver(
        tmp_path,
        cluster,
        grid_params(lr=LR, hidden="64"),
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.n_jobs=2",
        "trainer.max_epochs=60",
        accounting=False,
    )
    try:
        victim = wait_for(lambda: [t for t in training_trials(url) if "slurm_job" in t.user_attrs], what="a job")[0]
        cluster.run("scancel", victim.user_attrs["slurm_job"])
        out, err = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    study = study_of(url)
    points = completed_points(study)
    assert len(points) == 2 and len(set(points)) == 2  # every point, once
    lost = study.trials[victim.number]
    assert lost.state == TrialState.FAIL and lost.system_attrs.get(co.LOST)
    assert "ended without a result (CANCELLED" in lost.user_attrs["error"]
    sibling = [
        t
        for t in study.trials
        if t.number != victim.number
        and t.user_attrs.get("slurm_job", "").split("_")[0] == victim.user_attrs["slurm_job"].split("_")[0]
    ]
    assert sibling and all(t.state == TrialState.COMPLETE for t in sibling)  # finished work kept
    retry = [t for t in study.trials if t.user_attrs.get(co.RETRY_OF) == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE


def test_array_workers_share_a_postgresql_study_and_survive_kill_9(tmp_path, cluster, postgres):
    """docs/sweeps.md way 2: N sbatch workers on one study; one worker SIGKILLed, then a resubmit."""
    name = f"array-{os.getpid()}"
    args = [
        grid_params(lr=LR, hidden="64,128,256"),
        f"hydra.sweeper.storage={postgres}",
        f"hydra.sweeper.study_name={name}",
        "trainer.max_epochs=40",
        "hydra.sweeper.poll_interval=1",
    ]
    command = shlex.join(sweep_cmd(tmp_path, *args))  # the script sbatch --wrap writes is run by /bin/sh

    def submit(array: str) -> str:
        out = cluster.run(
            "sbatch",
            "--parsable",
            f"--array={array}",
            "-c",
            "1",
            "--mem=1G",
            f"--chdir={REPO}",
            f"--output={tmp_path}/worker-%A_%a.out",
            "--wrap",
            command,
        )
        return out.strip().split(";")[0]

    array = submit("0-1")
    victim = wait_for(lambda: training_trials(postgres, name), what="a training trial")[0]
    host, _, pid = victim.system_attrs[co.OWNER].rpartition(":")
    os.kill(int(pid), signal.SIGKILL)  # the worker process itself, mid-trial
    wait_for(lambda: not [j for j in cluster.jobs() if j.startswith(f"{array}_")], what="the workers to end")
    study = study_of(postgres, name)
    points = completed_points(study)
    assert len(points) == 6 and len(set(points)) == 6, [(t.number, t.state, t.user_attrs) for t in study.trials]
    lost = study.trials[victim.number]
    assert lost.state == TrialState.FAIL and "no heartbeat: its worker" in lost.user_attrs["error"]
    # The surviving worker reran the lost point; a resubmitted worker finds nothing left to do.
    again = submit("0")
    wait_for(lambda: not [j for j in cluster.jobs() if j.startswith(f"{again}_")], what="the resubmitted worker")
    assert len(study_of(postgres, name).trials) == 7
    log = Path(tmp_path / f"worker-{again}_0.out").read_text()
    assert "6/6 trials done" in log and "Traceback" not in log


def test_a_request_no_node_can_satisfy_stops_the_driver_with_one_line(tmp_path, cluster):
    url = f"journal:///{tmp_path}/j.log"
    base = [grid_params(lr="0.001", hidden="64"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    proc = driver(tmp_path, cluster, *base, "hydra.launcher.cpus_per_task=4")  # the node has 2
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    line = one_error_line(err)
    assert "will never start: pending with reason PartitionConfig" in line and "--cpus-per-task=4" in line
    assert not cluster.jobs()  # the pending job was cancelled
    assert not study_of(url).get_trials(states=(TrialState.RUNNING,))
    proc = driver(tmp_path, cluster, *base, "hydra.launcher.mem_gb=16")  # the node has 4 GB: sbatch refuses
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    line = one_error_line(err)
    assert (
        "Slurm refused the jobs" in line and "Memory specification can not be satisfied" in line and "--mem=16G" in line
    )
    proc = driver(tmp_path, cluster, *base, "hydra.launcher.partition=cpu")  # no such partition
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Slurm refused the jobs" in one_error_line(err)
    # Three stops of the driver, none the trial's own failure: the point is still to run (it was
    # given up for good after max_retries=2 such stops), and the right command runs it.
    study = study_of(url)
    assert all(t.system_attrs.get(co.UNCOUNTED) for t in study.get_trials(states=(TrialState.FAIL,)))
    proc = driver(tmp_path, cluster, *base)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert len(completed_points(study_of(url))) == 1


def test_a_plain_multirun_on_slurm_says_the_same_in_one_line(tmp_path, cluster):
    """`train.py -m` with the SLURM launcher and no sweeper: the launcher's own one-line error."""
    command = [
        sys.executable,
        "train.py",
        "-m",
        "mapper=nn,lin",
        f"paths.log_dir={tmp_path}",
        *FAST,
        *LAUNCHER,
        "hydra.launcher.cpus_per_task=4",
    ]
    proc = subprocess.run(command, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "pending with reason PartitionConfig" in one_error_line(proc.stderr)
    assert not cluster.jobs()


def test_a_trial_past_its_time_limit_is_rerun_then_fails_with_one_line(tmp_path, cluster):
    """timeout_min=1 with submitit's 120 s warning: the job is told at once that it timed out and
    ends without a result. The trial is lost and rerun (max_retries=1), then fails for good."""
    url = f"journal:///{tmp_path}/j.log"
    proc = driver(
        tmp_path,
        cluster,
        grid_params(lr="0.001", hidden="64"),
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.max_retries=1",
        "hydra.launcher.timeout_min=1",
        "trainer.max_epochs=3000",
    )
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 2
    assert "no successful trial: 1 failed" in one_error_line(err)
    trials = study_of(url).trials
    assert len(trials) == 2 and all(t.state == TrialState.FAIL for t in trials)
    # Each attempt ended without a result: submitit's time-limit error, Slurm's TIMEOUT, or a job
    # that the signal struck before submitit could write its result (FAILED, seen under load).
    errors = [t.user_attrs["error"] for t in trials]
    assert all(t.system_attrs.get(co.LOST) for t in trials), errors
    assert all(e.startswith("lost: Slurm job") for e in errors), errors
    assert trials[1].user_attrs[co.RETRY_OF] == 0  # rerun once, not counted as the objective failing


def test_sigterm_to_the_driver_cancels_its_jobs_and_requeues_its_trials(tmp_path, cluster):
    url = f"journal:///{tmp_path}/j.log"
    base = [
        grid_params(lr=LR, hidden="64"),
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.n_jobs=2",
    ]
    proc = driver(tmp_path, cluster, *base, "trainer.max_epochs=200")
    try:
        wait_for(lambda: training_trials(url), what="a training trial")
        in_flight = [t.number for t in study_of(url).get_trials(states=(TrialState.RUNNING,))]
        jobs = {t.user_attrs["slurm_job"] for t in study_of(url).get_trials(states=(TrialState.RUNNING,))}
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "sweep stopped by SIGTERM" in one_error_line(err)
    wait_for(lambda: not jobs & set(cluster.jobs()), timeout=30, what="the jobs to be cancelled")
    study = study_of(url)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    for number in in_flight:
        assert (
            study.trials[number].state == TrialState.FAIL and study.trials[number].user_attrs["error"] == "interrupted"
        )
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs[co.RETRY_OF] for t in waiting if co.RETRY_OF in t.user_attrs) == sorted(in_flight)
    proc = driver(tmp_path, cluster, *base)  # resume: 1 epoch now
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    points = completed_points(study_of(url))
    assert len(points) == 2 and len(set(points)) == 2


def test_a_controller_that_does_not_answer_loses_no_job(tmp_path, cluster, monkeypatch):
    """squeue timing out (a busy or restarting slurmctld) is no answer, not "job gone", on a cluster
    without accounting (with it, sacct would answer for squeue)."""
    import submitit

    from bridgeeval.sweeps.slurm import follow

    monkeypatch.setenv("SLURM_CONF", cluster.client_env(accounting=False)["SLURM_CONF"])
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
    executor.update_parameters(timeout_min=5, cpus_per_task=1, mem_gb=1)
    job = executor.submit(time.sleep, 25)
    wait_for(lambda: f"{job.job_id} RUNNING" in cluster.run("squeue", "-h", "-o", "%i %T"), what="the job to run")
    controller = cluster.procs["slurmctld"].pid
    os.kill(controller, signal.SIGSTOP)  # MessageTimeout is 3 s: squeue fails after 6 s, twice
    resume = threading.Timer(15, os.kill, (controller, signal.SIGCONT))
    resume.start()
    try:
        outcomes = list(follow([job], poll_interval=1, result_grace=1, quick_grace=1))
    finally:
        resume.join()
    # The false loss has one signature: a running job "unknown" while squeue was not answering.
    # (Once in CI the job itself died while the controller was stopped: Slurm says FAILED, a real loss.)
    assert len(outcomes) == 1 and "unknown to squeue" not in str(outcomes[0].lost), outcomes


def test_a_trial_whose_remote_worker_job_ended_is_lost_at_once(cluster, monkeypatch):
    """A worker on another node: no pid to check, but Slurm says its job ended (no 300 s wait)."""
    import optuna

    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    job = cluster.run("sbatch", "--parsable", "--mem=100M", "--output=/dev/null", "--wrap", "true").strip()
    wait_for(lambda: f"{job} COMPLETED" in cluster.run("squeue", "-h", "-t", "all", "-o", "%i %T"), what="the job")
    dist = optuna.distributions.FloatDistribution(0, 1)
    trial = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params={"x": 0.5},
        distributions={"x": dist},
        system_attrs={co.OWNER: "node-elsewhere:4242", co.OWNER_JOB: job, co.HEARTBEAT: time.time()},
    )
    reason = co.stale_reason(trial, grace_period=300, slurm=co.owner_job_states([trial]))
    assert reason == f"no heartbeat: its worker's Slurm job {job} ended (COMPLETED)"
    alive = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params={"x": 0.5},
        distributions={"x": dist},
        system_attrs={co.OWNER: "node-elsewhere:4243", co.HEARTBEAT: time.time()},
    )
    assert co.stale_reason(alive, grace_period=300) is None  # no job known: the heartbeat decides


def test_a_time_limit_struck_before_the_task_still_counts_as_lost():
    """Under load submitit's time-limit signal can arrive while Hydra still loads the job's config,
    outside the task: the job's error is then submitit's FailedJobError, whose last line is a log
    path and whose trace holds the marker. The trial is lost (and rerun), not failed; another
    failure is reported by its exception line, not by the log path."""
    from submitit.core.utils import FailedJobError

    from bridgeeval.sweeps.slurm import _read

    def failed_job(trace: str):
        text = (f"Job (task=0) failed during processing with trace:\n----------------------\n{trace}\n"
                "----------------------\nYou can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
                "  - /shared/.submitit/4/4_0_log.err\n  - /shared/.submitit/4/4_0_log.out")

        class Job:  # what _read uses of a submitit job: its id and its results() raising the job's error
            job_id = "4"

            def results(self):
                raise FailedJobError(text)

        return Job()

    trace = ("Traceback (most recent call last):\n  File \"submitit_launcher.py\", line 62, in __call__\n"
             "submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too many times.")
    outcome = _read(0, failed_job(trace))
    assert outcome.lost == ("Slurm job 4 hit its time limit (submitit.core.utils.UncompletedJobError: Job not "
                            "requeued because: timed-out too many times.)") and outcome.error is None
    other = _read(1, failed_job("Traceback (most recent call last):\nValueError: bad input file"))
    assert other.lost is None and other.error == "ValueError: bad input file"


def test_a_job_killed_by_sigkill_is_lost_with_its_state_exit_code_and_signal(tmp_path, cluster):
    """A trial's job killed outright (what the out-of-memory killer does): its reason carries Slurm's
    state, exit code and signal and names the likely cause, where it said only '(FAILED)'."""
    url = f"journal:///{tmp_path}/j.log"
    proc = driver(tmp_path, cluster, grid_params(lr="0.001", hidden="64"), f"hydra.sweeper.storage={url}",
                  "hydra.sweeper.study_name=s", "trainer.max_epochs=60")
    try:
        victim = wait_for(lambda: [t for t in training_trials(url) if "slurm_job" in t.user_attrs], what="a job")[0]
        killed = _kill_job_task(victim.user_attrs["slurm_job"])  # as the kernel's OOM killer would
        assert killed, "no task process of the job found"
        _, err = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    lost = study_of(url).trials[victim.number]
    reason = lost.user_attrs["error"]
    assert lost.system_attrs.get(co.LOST) and "signal 9 (SIGKILL, often the out-of-memory killer" in reason, reason
    assert "exit code" in reason and "hydra.launcher.mem_gb" in reason
    assert len(completed_points(study_of(url))) == 1  # rerun, and done


def _kill_job_task(job_id: str) -> list[int]:
    """SIGKILL to the job's task process (the one node is this machine): found by its environment."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"SLURM_JOB_ID={job_id}".encode() in env and b"submitit.core._submit" in cmdline and b"srun" not in cmdline:
            os.kill(int(proc.name), signal.SIGKILL)
            killed.append(int(proc.name))
    return killed


def test_memory_below_one_gb_is_asked_for_in_megabytes(tmp_path, cluster):
    """hydra.launcher.mem_gb=0.5 was Hydra's integer error; Slurm now gets --mem=512M."""
    url = f"journal:///{tmp_path}/j.log"
    proc = driver(tmp_path, cluster, grid_params(lr="0.001", hidden="64"), f"hydra.sweeper.storage={url}",
                  "hydra.sweeper.study_name=s", "hydra.launcher.mem_gb=0.5")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    (trial,) = study_of(url).trials
    job = trial.user_attrs["slurm_job"]
    asked = cluster.run("sacct", "-X", "-n", "-P", "-o", "ReqMem", "-j", job).split()
    assert asked and asked[0] in ("512M", "512Mn"), asked


def test_a_drained_node_is_waited_out_up_to_the_pending_limit(tmp_path, cluster):
    """ReqNodeNotAvail (a drained node) was 'will never start': the batch cancelled and exit 2 at
    once. It is routine: waited for up to hydra.launcher.pending_limit, then one line; the trial
    keeps its attempt and runs once the node is back."""
    url = f"journal:///{tmp_path}/j.log"
    base = [grid_params(lr="0.001", hidden="64"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    cluster.run("scontrol", "update", f"nodename={cluster.host}", "state=drain", "reason=bridgeeval-test")
    try:
        started = time.time()
        proc = driver(tmp_path, cluster, *base, "hydra.launcher.pending_limit=8")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2 and time.time() - started >= 8, err[-3000:]
        line = one_error_line(err)
        assert "DRAINED" in line and "past hydra.launcher.pending_limit=8 s" in line, line
        assert "waiting up to hydra.launcher.pending_limit=8 s" in out + err  # said while it waited
        assert not cluster.jobs()
    finally:
        cluster.run("scontrol", "update", f"nodename={cluster.host}", "state=resume")
    proc = driver(tmp_path, cluster, *base)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert len(completed_points(study_of(url))) == 1


def test_a_maintenance_reservation_is_waited_out(tmp_path, cluster):
    url = f"journal:///{tmp_path}/j.log"
    cluster.run("scontrol", "create", "reservation", "reservationname=bridgeeval-maint", "starttime=now",
                "duration=30", f"nodes={cluster.host}", "flags=maint,ignore_jobs", "users=slurm")
    try:
        proc = driver(tmp_path, cluster, grid_params(lr="0.001", hidden="64"), f"hydra.sweeper.storage={url}",
                      "hydra.sweeper.study_name=s")
        wait_for(lambda: "Reserved for maintenance" in cluster.run("squeue", "-h", "-o", "%r"), 120,
                 "a job pending on the reservation")
        time.sleep(3)  # the driver sees it pending, and waits
        assert proc.poll() is None
    finally:
        cluster.run("scontrol", "delete", "reservationname=bridgeeval-maint", check=False)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "Reserved for maintenance); waiting up to hydra.launcher.pending_limit=3600 s" in out + err
    assert len(completed_points(study_of(url))) == 1


def test_a_free_slot_takes_the_next_trial_while_a_slow_sibling_runs(tmp_path, cluster):
    """Slots refill: with n_jobs=2 and the first (slow) point taking minutes, the three quick
    points run one after another in the other slot and all end before the slow one. (When a
    batch was followed as a whole, they waited for it: the quick slot sat idle.)"""
    url = f"journal:///{tmp_path}/j.log"
    command = [arg for arg in sweep_cmd(tmp_path, *LAUNCHER) if not arg.startswith("trainer.max_epochs=")]
    command += [grid_params(lr="0.001", hidden="64"), '+hydra.sweeper.params={trainer.max_epochs:"choice(400,1,2,3)"}',
                f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s", "hydra.sweeper.n_jobs=2"]
    proc = subprocess.Popen(command, cwd=REPO, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    trials = {t.params["trainer.max_epochs"]: t for t in study_of(url).trials}
    assert sorted(trials) == [1, 2, 3, 400] and all(t.state == TrialState.COMPLETE for t in trials.values())
    spans = {epochs: job_span(cluster, t.user_attrs["slurm_job"]) for epochs, t in trials.items()}
    slow_end = spans[400][1]
    assert all(spans[e][1] < slow_end for e in (1, 2, 3)), spans
    # The quick slot's idle time between one job's end and the next one's start: one poll and an
    # sbatch (poll_interval=1 here), not the slow job's remaining minutes.
    gaps = [spans[b][0] - spans[a][1] for a, b in ((1, 2), (2, 3))]
    print(f"slot refill: quick jobs {spans[1]}, {spans[2]}, {spans[3]}; slow {spans[400]}; idle gaps {gaps} s")
    assert max(gaps) < 30, gaps


def job_span(cluster: SlurmCluster, job: str) -> tuple[float, float]:
    """A job's start and end, in seconds since the epoch, from accounting (once it has the end)."""
    import datetime

    def span():
        line = cluster.run("sacct", "-X", "-n", "-P", "-o", "Start,End", "-j", job).split()
        return line[0] if line and "Unknown" not in line[0] else None

    start, end = (datetime.datetime.fromisoformat(v).timestamp() for v in wait_for(span, 60, "accounting").split("|"))
    return start, end


def test_ctrl_c_three_times_drops_no_point_and_a_second_grid_is_refused(tmp_path, cluster):
    """Three drivers interrupted with Ctrl-C once their job is submitted, with max_retries=0: each
    stop cancels the job and uses up no attempt, and the fourth run completes the point. Then a
    sweep of another grid on the same study is refused in one line before it submits anything."""
    url = f"journal:///{tmp_path}/j.log"
    base = [grid_params(lr="0.001", hidden="64"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s",
            "hydra.sweeper.max_retries=0"]
    for _ in range(3):
        proc = subprocess.Popen(sweep_cmd(tmp_path, *LAUNCHER, *base, "trainer.max_epochs=300"), cwd=REPO,
                                env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            wait_for(lambda: [t for t in _running(url) if "slurm_job" in t.user_attrs], what="a submitted job")
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 128 + signal.SIGINT and "sweep stopped by SIGINT" in one_error_line(err)
        wait_for(lambda: not cluster.jobs(), timeout=60, what="the job to be cancelled")
    study = study_of(url)
    interrupted = study.get_trials(states=(TrialState.FAIL,))
    assert len(interrupted) == 3 and all(t.system_attrs.get(co.UNCOUNTED) for t in interrupted)
    proc = driver(tmp_path, cluster, *base)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert len(completed_points(study_of(url))) == 1
    trials = len(study_of(url).trials)
    proc = driver(tmp_path, cluster, *base[1:], grid_params(lr="0.001", hidden="64,128"))
    _, err = proc.communicate(timeout=300)
    line = one_error_line(err)
    assert proc.returncode == 2 and "study 's' searches " in line and "mapper.hidden_units: choice(64, 128)" in line
    assert len(study_of(url).trials) == trials and not cluster.jobs()


def _running(url: str) -> list:
    try:
        return study_of(url).get_trials(states=(TrialState.RUNNING,))
    except (KeyError, ValueError, OSError):
        return []


def test_a_storage_made_unwritable_mid_sweep_cancels_the_jobs_in_one_line(tmp_path, cluster):
    if not chattr_works(tmp_path):
        pytest.skip("chattr +i is not supported on this file system")
    journal = tmp_path / "j.log"
    url = f"journal:///{journal}"
    base = [grid_params(lr="0.001,0.0001", hidden="64"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    proc = driver(tmp_path, cluster, *base, "trainer.max_epochs=100")
    try:
        wait_for(lambda: [t for t in _running(url) if "slurm_job" in t.user_attrs], what="a submitted job")
        subprocess.run(["chattr", "+i", str(journal)], check=True)
        _, err = proc.communicate(timeout=240)
    finally:
        subprocess.run(["chattr", "-i", str(journal)], capture_output=True)
        proc.kill()
    assert proc.returncode == 2 and f"sweep stopped: cannot write {journal}" in one_error_line(err)
    wait_for(lambda: not cluster.jobs(), timeout=60, what="the jobs to be cancelled")
    proc = driver(tmp_path, cluster, *base)  # writable again: the resume finishes the grid
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert len(set(completed_points(study_of(url)))) == 2


def test_a_multi_objective_study_runs_on_slurm_and_is_readable(tmp_path, cluster):
    """The stock multi-objective example with the Slurm launcher; best and status list its front."""
    apps = REPO / "tests" / "stock_optuna"
    url = f"journal:///{tmp_path}/mo.log"
    launcher = [a.replace("hydra/launcher=slurm", "hydra/launcher=bridgeeval_slurm") for a in LAUNCHER]
    proc = subprocess.run([sys.executable, "multi_objective.py", "--multirun", *launcher, f"hydra.sweep.dir={tmp_path}/mo",
                           "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/sweeper/sampler=random",
                           "hydra.sweeper.sampler.seed=1", f"hydra.sweeper.storage={url}",
                           "hydra.sweeper.study_name=mo"], cwd=apps, env=cluster.env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = study_of(url, "mo")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert all("slurm_job" in t.user_attrs for t in study.trials)  # each trial ran as a Slurm job
    front = sorted(t.number for t in study.best_trials)
    cli = [sys.executable, "-m", "bridgeeval.cli", "sweep"]
    best = subprocess.run([*cli, "best", "mo", "--storage", url, "--json"], capture_output=True, text=True, timeout=120)
    assert best.returncode == 0, best.stderr
    import json

    assert sorted(t["number"] for t in json.loads(best.stdout)["pareto"]) == front
    status = subprocess.run([*cli, "status", "mo", "--storage", url], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "Pareto front so far: trial" in status.stdout, status.stderr
