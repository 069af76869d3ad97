"""Sweeps on the real Slurm test cluster, part 2: what a researcher's cluster and hands do to a
sweep (a trial past its time limit, a slow trial beside quick ones, Ctrl-C three times, a second
grid on a study, a storage made unwritable, a multi-objective study). A cluster of its own, so
that pytest-xdist runs the two Slurm modules side by side.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from optuna.trial import TrialState
from slurm_helpers import LAUNCHER, driver, job_span, one_error_line, running, running_cluster, wait_for
from sweep_helpers import REPO, chattr_works, completed_points, grid_params, study_of, sweep_cmd

from bridgeeval.sweeps import coordination as co

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster()


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
            wait_for(lambda: [t for t in running(url) if "slurm_job" in t.user_attrs], what="a submitted job")
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


def test_a_storage_made_unwritable_mid_sweep_cancels_the_jobs_in_one_line(tmp_path, cluster):
    if not chattr_works(tmp_path):
        pytest.skip("chattr +i is not supported on this file system")
    journal = tmp_path / "j.log"
    url = f"journal:///{journal}"
    base = [grid_params(lr="0.001,0.0001", hidden="64"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    proc = driver(tmp_path, cluster, *base, "trainer.max_epochs=100")
    try:
        wait_for(lambda: [t for t in running(url) if "slurm_job" in t.user_attrs], what="a submitted job")
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
    assert sorted(t["number"] for t in json.loads(best.stdout)["pareto"]) == front
    status = subprocess.run([*cli, "status", "mo", "--storage", url], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "Pareto front so far: trial" in status.stdout, status.stderr
