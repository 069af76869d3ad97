"""Sweeps on a real Slurm cluster (Debian's slurm-wlm 22.05, one node on loopback, started here).

docs/sweeps.md's two ways (one driver with ``hydra/launcher=slurm``; N ``sbatch --array`` workers),
and what a cluster does to them: a cancelled array task, a worker killed with SIGKILL and
resubmitted, a request no node can satisfy, a driver stopped with SIGTERM, a cluster without
accounting. Each case checks the study through Optuna's API: one COMPLETE trial per grid point,
none lost, none run twice.
"""

from __future__ import annotations

import json
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
from slurm_helpers import LAUNCHER, LR, driver, one_error_line, running_cluster, training_trials, wait_for
from sweep_helpers import FAST, REPO, completed_points, grid_params, study_of, sweep_cmd

from bridgeeval.sweeps import coordination as co

pytestmark = pytest.mark.slow
@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster()


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
    assert len(points) == 6 and len(set(points)) == 6, summary(study)
    assert len(study.trials) == 7, summary(study)  # the 6 points and the lost one: nothing queued twice
    lost = study.trials[victim.number]
    assert lost.state == TrialState.FAIL and "no heartbeat: its worker" in lost.user_attrs["error"]
    # The surviving worker reran the lost point; a resubmitted worker finds nothing left to do.
    again = submit("0")
    wait_for(lambda: not [j for j in cluster.jobs() if j.startswith(f"{again}_")], what="the resubmitted worker")
    assert len(study_of(postgres, name).trials) == 7, summary(study_of(postgres, name))
    log = Path(tmp_path / f"worker-{again}_0.out").read_text()
    assert "6/6 trials done" in log and "Traceback" not in log


def summary(study) -> list:
    """What a failed assertion shows of a study: each trial's number, state, point and retry link."""
    return [(t.number, t.state.name, co.point_of(t), t.user_attrs.get(co.RETRY_OF)) for t in study.trials]


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


def test_a_signal_only_the_step_has_on_record_still_names_the_kill():
    """Under load accounting held the killed step's "0:9" while the job's derived code was still
    "0:0": the reason said only "FAILED, exit code 9" (a CI failure). The step's signal is used."""
    from bridgeeval.sweeps.slurm import _step_signal, describe_exit

    derived = _step_signal("0:0", ["9:0", "0:9"])  # the batch step, then the killed task's step
    assert derived == "0:9" and "signal 9 (SIGKILL, often the out-of-memory killer" in describe_exit("FAILED", "9:0", derived)
    assert _step_signal("0:15", ["0:9"]) == "0:15"  # the job's own record wins where it has one
    assert _step_signal("0:0", ["1:0"]) == "0:0" and describe_exit("FAILED", "1:0", "0:0") == "FAILED, exit code 1"


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


def test_score_under_srun_with_two_tasks_prints_what_one_process_does(tmp_path, cluster):
    """`srun -n 2 bridgeeval score`: the tasks join one gloo group from Slurm's variables (rank,
    size, the step's first node), share each search and print one JSON, equal to one process's."""
    from test_sharding import KNN_MEASURES, _single, _write_sets

    paths = _write_sets(tmp_path)
    env = {**cluster.client_env(), "OMP_NUM_THREADS": "1"}
    args = ["score", *paths, "--json", "--measures", KNN_MEASURES, "--metric", "euclidean"]
    two = subprocess.run(["srun", "-n", "2", "--cpus-per-task=1", "--time=5", sys.executable, "-m", "bridgeeval.cli",
                          *args], capture_output=True, text=True, timeout=300, env=env)
    one = _single(*args)
    assert two.returncode == 0 == one.returncode, two.stderr[-3000:]
    assert two.stdout.count('"n": 2600') == 1 and json.loads(two.stdout) == json.loads(one.stdout)
