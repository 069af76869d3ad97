"""Sweep integrity whatever is killed when: no point lost, none run twice, none thrown away.

Each case is one the issue found broken (issue 11), played with real processes on real storage:
a worker killed between claiming a point and starting its job, a study creator killed while
filling the grid, two workers on one SQLite file, parallel TPE workers, a budget two workers race
for, and a sweep whose every trial fails.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from sweep_helpers import REPO, completed_points, grid_params, run_sweep, study_of, sweep_cmd

from bridgeeval.errors import BridgeEvalError
from bridgeeval.sweeps import coordination as co
from bridgeeval.sweeps.space import grid_points, parse_space
from bridgeeval.sweeps.storage import open_storage, parse_url

GRID = {
    "optimizer.lr": "choice(0.01,0.001)",
    "mapper.hidden_units": "choice(64,128,256)",
    "mapper.dropout": "choice(0.0)",
}


def the_grid() -> list[dict]:
    return grid_points(parse_space(GRID)[0])


def grid_arg() -> str:
    return grid_params(hidden="64,128,256")


def in_child(target, *args) -> int:
    """Runs ``target(*args)`` in a fresh process (spawned: a real, separate worker); its exit code."""
    proc = multiprocessing.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join(120)
    return proc.exitcode


def _claim_then_die(url: str) -> None:
    """A worker that creates the study, fills the grid, claims a batch of three points and is killed
    before its jobs receive the parameters (no suggest call: the trials have no params yet)."""
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    co.repair(study, the_grid(), grace_period=300, max_retries=2)
    for _ in range(3):
        trial = co.claim_next(study)
    assert trial is not None and not study.trials[trial.number].params
    os._exit(9)


def _claim_suggest_one_then_die(url: str) -> None:
    """A worker killed between two suggest calls: its trial holds part of its point."""
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    trial = co.claim_next(study)
    trial.suggest_categorical("optimizer.lr", [0.01, 0.001])
    os._exit(9)


def _fill_two_then_die(url: str) -> None:
    """A study creator killed while filling the grid, holding the study lock."""
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    lock = co.StudyLock(study).__enter__()
    assert lock.held
    for point in the_grid()[:2]:
        study.enqueue_trial(point)
    os._exit(9)


def _repair_many(url: str, start: float) -> None:
    storage = open_storage(url)
    try:
        optuna.create_study(study_name="s", storage=storage)
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name="s", storage=storage)
    time.sleep(max(0.0, start - time.time()))  # all start repairing together
    for _ in range(3):
        co.repair(study, [{"a": i, "b": j} for i in range(10) for j in range(6)], grace_period=300, max_retries=2)


# -- storage URLs ----------------------------------------------------------------------------------
def test_storage_urls_mean_what_they_look_like(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_url("journal:///tmp/x/j.log").path == Path("/tmp/x/j.log")  # absolute, as file:///
    assert parse_url("journal:runs/j.log").path == tmp_path / "runs" / "j.log"
    assert parse_url("runs/j.log").backend == "journal" and parse_url("runs/s.db").backend == "sqlite"
    assert parse_url("sqlite:///s.db").path == tmp_path / "s.db"  # SQLAlchemy's rule
    assert parse_url("sqlite:////abs/s.db").path == Path("/abs/s.db")
    # docs/sweeps.md's example is an absolute file, wherever the worker starts.
    assert parse_url("journal:///shared/me/optuna/grid.log").path == Path("/shared/me/optuna/grid.log")
    for bad in ("journal://host/x.log", "redis://x", "", "sqlite:/x.db"):
        with pytest.raises(BridgeEvalError, match="storage"):
            parse_url(bad)
    # Two workers started from different folders open the same absolute file.
    url = f"journal:///{tmp_path}/shared/j.log"
    optuna.create_study(study_name="s", storage=open_storage(url))
    monkeypatch.chdir("/")
    assert optuna.load_study(study_name="s", storage=open_storage(url)).study_name == "s"


@pytest.mark.slow
def test_relative_journal_is_resolved_once_and_jobs_get_the_absolute_path(tmp_path):
    cmd = sweep_cmd(
        tmp_path,
        grid_params(lr="0.01", hidden="64"),
        "hydra.sweeper.storage=journal:rel/j.log",
        "hydra.sweeper.study_name=s",
    )
    cmd[1] = str(REPO / "train.py")  # started from another folder: the path is relative to it
    # As a worker inside a Slurm job would: a relative path there is worth one warning line.
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "SLURM_JOB_ID": "4242"}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "is a relative path" in line]
    assert len(warnings) == 1 and f"{tmp_path}/rel/j.log" in warnings[0]
    study = study_of(f"journal:///{tmp_path}/rel/j.log")
    trial = study.get_trials(states=(TrialState.COMPLETE,))[0]
    overrides = yaml.safe_load((Path(trial.user_attrs["output_dir"]) / ".hydra" / "overrides.yaml").read_text())
    assert f"sweep_trial.storage=journal:///{tmp_path}/rel/j.log" in overrides


# -- points lost, duplicated or starved --------------------------------------------------------------
@pytest.mark.slow
def test_point_claimed_by_a_killed_worker_runs_again_and_first(tmp_path):
    url = f"journal:///{tmp_path}/j.log"
    assert in_child(_claim_then_die, url) == 9
    orphans = study_of(url).get_trials(states=(TrialState.RUNNING,))
    assert len(orphans) == 3 and not any(t.params for t in orphans)  # claimed, never started
    args = [grid_arg(), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    # A budget of three trials: the three requeued points run before the three fresh ones.
    run_sweep(tmp_path, *args, "hydra.sweeper.n_trials=3")
    study = study_of(url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(co.point_key(t.params) for t in done) == sorted(co.point_key(co.point_of(t)) for t in orphans)
    assert sorted(t.user_attrs[co.RETRY_OF] for t in done) == [t.number for t in orphans]
    for orphan in orphans:
        lost = study.trials[orphan.number]
        assert lost.state == TrialState.FAIL and "no heartbeat" in lost.user_attrs["error"]
    run_sweep(tmp_path, *args)  # then the whole grid, each point once
    points = completed_points(study_of(url))
    assert len(points) == 6 and len(set(points)) == 6
    run_sweep(tmp_path, *args)
    assert len(study_of(url).trials) == 9  # 6 points + the 3 lost; reruns add nothing


def test_a_point_half_suggested_is_neither_enqueued_again_nor_retried_as_half(tmp_path):
    """A worker between two suggest calls holds a trial with part of its point in ``params``:
    another worker's repair must not take that point for missing (it did, and enqueued it again:
    a grid point queued twice), and a worker killed there is retried with its whole point."""
    url = f"journal:///{tmp_path}/j.log"
    grid = the_grid()
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    co.repair(study, grid, grace_period=300, max_retries=2)
    trial = co.claim_next(study)
    trial.suggest_categorical("optimizer.lr", [0.01, 0.001])
    other = optuna.load_study(study_name="s", storage=open_storage(url))  # another worker's view
    assert len(other.trials[trial.number].params) == 1  # the half-suggested state, as others see it
    assert not co.needs_repair(other.trials, grid, grace_period=300, max_retries=2)
    assert co.repair(other, grid, grace_period=300, max_retries=2) == []
    assert len(other.trials) == 6

    assert in_child(_claim_suggest_one_then_die, url) == 9
    actions = co.repair(other, grid, grace_period=300, max_retries=2)
    trials = study_of(url).trials
    lost, retry = next(t for t in trials if t.state == TrialState.FAIL), trials[-1]
    n = lost.number
    assert [a.split(" (")[0] for a in actions] == [f"trial {n} lost", f"trial {n} requeued"]  # nothing enqueued
    assert len(trials) == 7 and retry.user_attrs[co.RETRY_OF] == lost.number
    assert retry.system_attrs["fixed_params"] == grid[lost.number]  # the whole point, not the half


@pytest.mark.slow
def test_creator_killed_while_filling_the_grid_is_taken_over_at_once(tmp_path):
    url = f"journal:///{tmp_path}/j.log"
    assert in_child(_fill_two_then_die, url) == 9
    started = time.time()
    run_sweep(tmp_path, grid_arg(), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s")
    assert time.time() - started < 60  # was ~90 s idle behind the dead creator's lock
    study = study_of(url)
    points = completed_points(study)
    assert len(points) == 6 and len(set(points)) == 6 and len(study.trials) == 6


def race_repairs(url: str) -> list:
    """Four processes repair one fresh 60-point grid study at the same moment, three times each."""
    start = time.time() + 3
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_repair_many, args=(url, start)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    trials = study_of(url).trials
    assert len(trials) == 60 and len({co.point_key(co.point_of(t)) for t in trials}) == 60
    return trials


def test_concurrent_repairs_enqueue_each_grid_point_once(tmp_path):
    url = f"journal:///{tmp_path}/j.log"
    race_repairs(url)
    storage = open_storage(url)
    locks = [s.study_name for s in storage.get_all_studies() if co.is_lock_study(s.study_name)]
    assert len(locks) == 1  # old lock generations are cleaned up


def test_concurrent_repairs_on_postgresql_enqueue_each_point_once(postgres):
    url = postgres.rsplit("/", 1)[0] + "/postgres"  # a database of its own: the study names repeat
    storage = open_storage(url)
    for s in storage.get_all_studies():
        storage.delete_study(s._study_id)
    race_repairs(url)


@pytest.mark.slow
def test_a_second_worker_on_one_sqlite_file_is_refused_with_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    args = [grid_params(lr="0.01", hidden="64"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    first = subprocess.Popen(
        sweep_cmd(tmp_path / "a", *args, "trainer.max_epochs=300"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not Path(f"{tmp_path}/s.db.sweep-lock").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        second = run_sweep(tmp_path / "b", *args, check=False)
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2
    errors = [line for line in second.stderr.splitlines() if line.startswith("bridgeeval: error")]
    assert len(errors) == 1 and "SQLite cannot share a study" in errors[0] and "journal:///" in errors[0]
    assert "Traceback" not in second.stderr


def _tpe_worker(tmp: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        sweep_cmd(
            tmp,
            f"hydra.sweeper.storage={url}",
            "hydra.sweeper.study_name=s",
            "hydra.sweeper.n_trials=6",
            "hydra/sweeper/pruner=none",
            'hydra.sweeper.params={mapper.dropout:"interval(0.0, 0.75)",'
            'optimizer.lr:"tag(log, interval(0.0001, 0.01))"}',
            search="tpe",
        ),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_parallel_tpe_workers_meet_the_budget_exactly_and_draw_distinct_points(tmp_path):
    url = f"journal:///{tmp_path}/j.log"
    workers = [_tpe_worker(tmp_path / f"w{i}", url) for i in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-2000:]
    study = study_of(url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 6  # n_trials=6: not 7 when both workers take the last slot
    assert all(t.system_attrs.get(co.VOID) for t in study.get_trials(states=(TrialState.FAIL,)))
    # Same sampler seed in the settings, yet no start-up point drawn twice.
    assert len({tuple(sorted(t.params.items())) for t in done}) == 6


@pytest.mark.slow
def test_a_sweep_whose_every_trial_fails_stops_at_n_trials_with_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    proc = run_sweep(
        tmp_path,
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.max_failure_rate=1.0",
        "metrics.k=500",
        "hydra/sweeper/pruner=none",
        search="tpe",
        check=False,
    )
    # max_failure_rate=1.0 allows every failure: as the stock plugin, the run succeeds, with a warning
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("bridgeeval: warning")]
    assert len(warnings) == 1 and "no successful trial: 4 failed" in warnings[0]
    assert len(study_of(url).trials) == 4  # failures count toward n_trials: the sweep ends
    assert all("metrics.k=500" in t.user_attrs["error"] for t in study_of(url).trials)


def test_settings_that_cannot_run_are_one_line_before_anything_is_written(tmp_path):
    url = f"journal:///{tmp_path}/j.log"
    for bad, message in (
        ("hydra.sweeper.n_trials=null", "set hydra.sweeper.n_trials"),
        ('hydra.sweeper.params={mapper.dropout:"interval(0.5, x)"}', "sweep params"),
    ):
        proc = run_sweep(tmp_path, f"hydra.sweeper.storage={url}", bad, search="tpe", check=False)
        assert proc.returncode == 2 and message in one_line(proc.stderr)
    assert not (tmp_path / "j.log").exists()


def one_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("bridgeeval: error")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return errors[0]


def test_failed_and_superseded_trials_are_counted_once():
    """A lost trial awaiting its retry is not done; once retried it is superseded; a lost trial past
    max_retries has failed for good; void trials never count."""
    dist = optuna.distributions.FloatDistribution(0, 1)

    def trial(number, state, system=None, user=None):
        return optuna.trial.create_trial(
            state=state,
            params={"x": 0.5},
            distributions={"x": dist},
            value=1.0 if state == TrialState.COMPLETE else None,
            system_attrs=system or {},
            user_attrs=user or {},
        )

    trials = [
        trial(0, TrialState.COMPLETE),
        trial(1, TrialState.FAIL, {co.LOST: "x"}),
        trial(2, TrialState.FAIL, {co.VOID: "x"}),
        trial(3, TrialState.FAIL),
    ]
    for i, t in enumerate(trials):
        t.number = i
    counts = co.tally(trials, max_retries=2)
    assert (counts.complete, counts.lost, counts.void, counts.failed, counts.done) == (1, 1, 1, 1, 2)
    retry = trial(4, TrialState.RUNNING, user={co.RETRY_OF: 1, co.ATTEMPT: 2})
    retry.number = 4
    counts = co.tally([*trials, retry], max_retries=2)
    assert (counts.superseded, counts.running, counts.lost, counts.done) == (1, 1, 0, 2)
    exhausted = trial(5, TrialState.FAIL, {co.LOST: "x"}, {co.ATTEMPT: 3})
    exhausted.number = 5
    assert co.tally([exhausted], max_retries=2).failed == 1


@pytest.mark.slow
def test_sweep_best_retrains_the_best_trial_once_and_status_shows_progress(tmp_path):
    url = f"journal:///{tmp_path}/j.log"
    run_sweep(
        tmp_path,
        grid_params(lr="0.01,0.001", hidden="64"),
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.study_name=s",
    )
    cli = [sys.executable, "-m", "bridgeeval.cli", "sweep"]
    best = json.loads(
        subprocess.run(
            [*cli, "best", "s", "--storage", url, "--json"], capture_output=True, text=True, check=True
        ).stdout
    )["best"]
    command = best["command"]
    assert "hydra.mode=RUN" in command and "sweep_trial" not in command
    assert all(f"{k}={v}" in command for k, v in best["params"].items())
    proc = subprocess.run(
        [sys.executable, *shlex.split(command)[1:]], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((tmp_path / "train" / "runs").glob("*/metrics.json"))
    assert len(runs) == 1  # one training, not a sweep
    metrics = json.loads(runs[0].read_text())
    for key, value in best["metrics"].items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    assert len(study_of(url).trials) == 2  # the study is untouched
    status = subprocess.run([*cli, "status", "s", "--storage", url], capture_output=True, text=True, check=True).stdout
    assert status.splitlines()[0].startswith("study s (minimize): 2/2 done; 2 complete")
    assert "retrain" not in status and "best so far: trial" in status
