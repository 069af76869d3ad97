"""Optuna sweeps of train.py: real sweeps on the built-in set, killed and resumed, shared by workers."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sweep_helpers import REPO, chattr_works, completed_points, grid_params, run_sweep, study_of, sweep_cmd

from bridgeeval.errors import BridgeEvalError
from bridgeeval.sweeps import coordination as co
from bridgeeval.sweeps.space import grid_points, parse_space


# -- search space ----------------------------------------------------------------------------------
def test_stock_plugin_params_syntax_becomes_optuna_distributions():
    space, fixed = parse_space(
        {
            "a": "choice(mse, cosine)",
            "b": "range(1, 7, 2)",
            "c": "interval(0.0, 0.5)",
            "d": "tag(log, interval(0.0001, 0.1))",
            "e": "int(interval(8, 64))",
        },
        ["trainer.max_epochs=3", "f=choice(1,2)"],
    )
    assert space["a"].distribution == CategoricalDistribution(("mse", "cosine"))
    # As the stock plugin: samplers draw from 1..7 (Optuna's inclusive bounds); the grid takes 1, 3, 5.
    assert space["b"].distribution == IntDistribution(1, 7, step=2) and space["b"].values == (1, 3, 5)
    assert space["c"].distribution == FloatDistribution(0.0, 0.5)
    assert space["d"].distribution == FloatDistribution(0.0001, 0.1, log=True)
    assert space["e"].distribution == IntDistribution(8, 64)
    assert space["f"].values == (1, 2)  # sweep-like command-line arguments join the space
    assert fixed == ["trainer.max_epochs=3"]


def test_grid_is_every_combination_and_refuses_continuous_params():
    space, _ = parse_space({"lr": "choice(0.01,0.001,0.0001)", "h": "choice(64,128,256,512,1024)"})
    points = grid_points(space)
    assert len(points) == 15 and len({tuple(p.items()) for p in points}) == 15
    space, _ = parse_space({"lr": "interval(0.001, 0.1)"})
    with pytest.raises(BridgeEvalError, match="continuous: lr"):
        grid_points(space)


def test_paper_grid_config_is_the_papers_space():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["hparams_search=paper_grid", "loss=max_margin"], return_hydra_config=True)
    from hydra_plugins.bridgeeval_optuna_sweeper.optuna_sweeper import active_params

    sweeper = cfg.hydra.sweeper
    space, _ = parse_space({**sweeper.params, **active_params(sweeper.conditional_params, cfg)})
    assert space["optimizer.lr"].values == (0.01, 0.001, 0.0001)
    assert space["mapper.hidden_units"].values == (64, 128, 256, 512, 1024)
    assert space["mapper.dropout"].values == (0.0, 0.25, 0.5, 0.75)
    assert len(grid_points(space)) == 3 * 5 * 4 * 4  # with max_margin's margins
    assert sweeper.sampler._target_ == "optuna.samplers.GridSampler" and sweeper.resume and sweeper.n_trials is None
    assert cfg.cv.folds == 5 and cfg.cv.protocol == "train_cv" and cfg.optimized_metric == "val/loss"
    assert "loss.margin" in active_params(sweeper.conditional_params, cfg)  # searched with max_margin
    cfg.hydra.runtime.choices.loss = "mse"
    assert active_params(sweeper.conditional_params, cfg) == {}
    cfg.hydra.runtime.choices.mapper = "lin"  # no hidden layer: the learning rates alone
    assert active_params(sweeper.conditional_params, cfg) == {"mapper.hidden_units": None, "mapper.dropout": None}
    cfg.hydra.runtime.choices.mapper = "lstsq"  # the closed form: its ridge penalties alone
    lstsq = {**sweeper.params, **active_params(sweeper.conditional_params, cfg)}
    space, _ = parse_space({key: value for key, value in lstsq.items() if value is not None})
    assert list(space) == ["mapper.alpha"] and len(grid_points(space)) == 8



def _sweeper_config(*overrides: str):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)


def test_pruners_are_a_config_group_of_target_configs():
    import optuna

    from bridgeeval.sweeps.samplers import build_pruner

    assert _sweeper_config("hparams_search=paper_grid")["pruner"] == {"_target_": "optuna.pruners.NopPruner"}
    median = build_pruner(_sweeper_config("hparams_search=tpe")["pruner"])
    assert isinstance(median, optuna.pruners.MedianPruner)
    assert (median._n_startup_trials, median._n_warmup_steps) == (5, 2)  # a few full curves before judging
    chosen = _sweeper_config("hparams_search=tpe", "hydra/sweeper/pruner=percentile", "hydra.sweeper.pruner.percentile=10")
    percentile = build_pruner(chosen["pruner"])
    assert isinstance(percentile, optuna.pruners.PercentilePruner) and percentile._percentile == 10
    assert isinstance(build_pruner(None), optuna.pruners.NopPruner)  # a SweepSettings built without one


@pytest.mark.parametrize("role, value, group", [
    ("pruner", "median", "hydra/sweeper/pruner=none|median"),
    ("pruner", {"name": "threshold", "upper": 1.0}, "hydra/sweeper/pruner="),
    ("sampler", "tpe", "hydra/sweeper/sampler=tpe|random"),
])
def test_a_sampler_or_pruner_by_name_is_refused_naming_its_config_group(role, value, group):
    from bridgeeval.sweeps.samplers import build_pruner, sampler_spec

    with pytest.raises(BridgeEvalError, match="choose the " + role + " by its config group") as err:
        (build_pruner if role == "pruner" else sampler_spec)(value)
    assert group in str(err.value) and "\n" not in str(err.value)


def test_an_argument_optuna_rejects_is_one_line_naming_the_class():
    from bridgeeval.sweeps.samplers import build_pruner, build_sampler

    with pytest.raises(BridgeEvalError, match="ThresholdPruner: .*lower.*upper"):
        build_pruner(_sweeper_config("hparams_search=tpe", "hydra/sweeper/pruner=threshold")["pruner"])
    with pytest.raises(BridgeEvalError, match="does not take n_trees; it takes"):
        build_sampler({"_target_": "optuna.samplers.TPESampler", "n_trees": 3}, seed=0)

# -- real sweeps -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_grid_sweep_runs_every_point_once_and_resumes_without_rerunning(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    args = [grid_params(), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    proc = run_sweep(tmp_path, *args)
    study = study_of(url)
    points = completed_points(study)
    assert len(points) == 4 and len(set(points)) == 4  # 2 x 2 grid, each point exactly once
    # one line per finished trial: its value named, its time, its params and the best so far
    said = re.findall(r"trial (\d+) done in ([\d.]+) s: val/loss@best_epoch = (\S+) \{.*\}; best: (\S+) \(trial (\d+)\)", proc.stdout + proc.stderr)
    assert sorted(int(n) for n, *_ in said) == [0, 1, 2, 3] and all(float(t) > 0 for _, t, *_ in said)
    running_best = min(float(v) for _, _, v, *_ in said)
    assert float(said[-1][3]) == pytest.approx(running_best, rel=1e-5)
    for trial in study.trials:  # the objective is the job's cross-validated val/loss
        metrics = json.loads((Path(trial.user_attrs["output_dir"]) / "metrics.json").read_text())
        assert trial.value == pytest.approx(metrics["val/loss"]) and len(metrics["folds"]) == 2
    run_sweep(tmp_path, *args)  # the same command again: nothing left to do
    assert len(study_of(url).trials) == 4

    out = subprocess.run(
        [sys.executable, "-m", "bridgeeval.cli", "sweep", "best", "s", "--storage", url, "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    best = json.loads(out)["best"]
    assert best["value"] == min(t.value for t in study.trials)
    assert set(best["params"]) == {"optimizer.lr", "mapper.hidden_units", "mapper.dropout"}
    assert "val/mnno_input_mapped_std" in best["metrics"] and "trainer.max_epochs=1" in best["command"]


@pytest.mark.slow
def test_sigkilled_sweep_resumes_and_finishes_the_grid_without_redoing_trials(tmp_path):
    url = f"journal:///{tmp_path}/study.log"
    args = [grid_params(hidden="64,128,256"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s",
            "trainer.max_epochs=4"]
    proc = subprocess.Popen(sweep_cmd(tmp_path, *args), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            time.sleep(0.5)
            if Path(f"{tmp_path}/study.log").exists():
                done = completed_points(study_of(url))
                if len(done) >= 2:
                    break
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = {t.number: t.params for t in study_of(url).get_trials(states=(TrialState.COMPLETE,))}
    assert 2 <= len(before) < 6
    run_sweep(tmp_path, *args)
    study = study_of(url)
    points = completed_points(study)
    assert len(points) == 6 and len(set(points)) == 6  # whole grid, no point twice
    after = {t.number: t.params for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert all(after[n] == p for n, p in before.items())  # finished trials kept, not rerun
    stale = study.get_trials(states=(TrialState.FAIL,))
    assert all("no heartbeat" in t.user_attrs["error"] for t in stale)  # the killed trial in flight


def _two_workers(tmp_path: Path, url: str) -> optuna.Study:
    args = [grid_params(lr="0.01,0.001,0.0001", hidden="64,128"), f"hydra.sweeper.storage={url}",
            "hydra.sweeper.study_name=s"]
    procs = [
        subprocess.Popen(sweep_cmd(tmp_path / f"w{i}", *args), cwd=REPO, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    study = study_of(url)
    points = completed_points(study)
    assert len(points) == 6 and len(set(points)) == 6  # nothing duplicated, nothing lost
    assert len(study.trials) == 6, [(t.number, t.state.name, t.user_attrs.get('error'), dict(t.system_attrs)) for t in study.trials if t.state.name != 'COMPLETE']
    worked = [len(glob.glob(f"{tmp_path}/w{i}/train/multiruns/*/*/metrics.json")) for i in range(2)]
    assert sum(worked) == 6
    return study


@pytest.mark.slow
def test_two_sweepers_share_a_journal_file_study(tmp_path):
    _two_workers(tmp_path, f"journal:///{tmp_path}/shared/study.log")


@pytest.mark.slow
def test_two_sweepers_share_a_postgresql_study(tmp_path, postgres):
    study = _two_workers(tmp_path, postgres)
    assert study.best_value == min(t.value for t in study.trials)


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_two_job_batch(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    run_sweep(tmp_path, grid_params(lr="0.01"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s",
              "hydra.sweeper.n_jobs=2", "hydra/launcher=submitit_local_cpu")
    study = study_of(url)
    assert len(completed_points(study)) == 2
    assert glob.glob(f"{tmp_path}/train/multiruns/*/.submitit/*")  # jobs ran through submitit
    assert {Path(t.user_attrs["output_dir"]).name for t in study.trials} == {"0", "1"}  # one batch


@pytest.mark.slow
def test_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    # metrics.k=500 exceeds the validation split: that trial fails before training. A sweep-like
    # command-line argument joins the searched params.
    run_sweep(tmp_path, grid_params(lr="0.01", hidden="64"), "metrics.k=choice(10,500)",
              f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s", "hydra.sweeper.max_failure_rate=0.6")
    study = study_of(url)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].params["metrics.k"] == 500
    assert "metrics.k=500 needs more validation items" in failed[0].user_attrs["error"]
    assert [t.params["metrics.k"] for t in study.get_trials(states=(TrialState.COMPLETE,))] == [10]
    # A rerun leaves failed points alone unless asked: retry_failed=true enqueues them again.
    base = [grid_params(lr="0.01", hidden="64"), "metrics.k=choice(10,500)", f"hydra.sweeper.storage={url}",
            "hydra.sweeper.study_name=s", "hydra.sweeper.max_failure_rate=0.6"]
    run_sweep(tmp_path, *base)
    assert len(study_of(url).trials) == 2
    run_sweep(tmp_path, *base, "hydra.sweeper.retry_failed=true", check=False)
    retried = study_of(url).get_trials(states=(TrialState.FAIL,))
    assert [t.params["metrics.k"] for t in retried] == [500, 500] and len(study_of(url).trials) == 3


@pytest.mark.slow
def test_failure_rate_over_the_limit_stops_the_sweep_with_one_line(tmp_path):
    proc = run_sweep(tmp_path, grid_params(lr="0.01", hidden="64"), "metrics.k=choice(500,600)",
                     f"hydra.sweeper.storage=sqlite:///{tmp_path}/study.db", "hydra.sweeper.study_name=s",
                     check=False)
    assert proc.returncode != 0 and "failure rate 1.00 > max_failure_rate 0.25" in proc.stderr


@pytest.mark.slow
def test_pruner_stops_a_trial_that_reports_a_bad_value(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    run_sweep(tmp_path, f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s", "hydra.sweeper.n_trials=2",
              # Any val/loss above 1e-9 is "bad": every trial is pruned after its first epoch.
              "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=1e-9", "trainer.max_epochs=5", search="tpe")
    trials = study_of(url).trials
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all(list(t.intermediate_values) == [0] for t in trials)  # stopped at the first report
    assert not glob.glob(f"{tmp_path}/train/multiruns/*/*/metrics.json")  # no job looks finished


def _training_trials(url: str) -> list:
    try:
        running = study_of(url).get_trials(states=(TrialState.RUNNING,))
    except (KeyError, ValueError):  # the study is not created yet
        return []
    return [t for t in running if t.intermediate_values]


@pytest.mark.slow
def test_ctrl_c_leaves_the_study_consistent_and_a_rerun_finishes(tmp_path):
    """With no retries allowed, the interrupted point still runs again: a driver stop is not the
    trial's failure and uses up none of its attempts (it was dropped for good before)."""
    url = f"sqlite:///{tmp_path}/study.db"
    args = [grid_params(hidden="64,128"), f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s",
            "hydra.sweeper.max_retries=0"]
    proc = subprocess.Popen(sweep_cmd(tmp_path, *args, "trainer.max_epochs=30"), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    # Press Ctrl-C once the first trial is training (it has reported an epoch to its trial).
    while time.time() < deadline and not _training_trials(url):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    study = study_of(url)
    assert not study.get_trials(states=(TrialState.RUNNING,))  # nothing left looking alive
    interrupted = study.get_trials(states=(TrialState.FAIL,))
    assert interrupted and all(t.user_attrs.get("error") == "interrupted" for t in interrupted)
    assert all(t.system_attrs.get(co.UNCOUNTED) for t in interrupted)
    run_sweep(tmp_path, *args)  # rerun (1 epoch now): the interrupted point runs again
    study = study_of(url)
    points = completed_points(study)
    assert len(points) == 4 and len(set(points)) == 4
    retries = [t for t in study.trials if co.RETRY_OF in t.user_attrs]
    assert retries and all(co.attempt_of(t) == 1 for t in retries)  # the same attempt, not a second


def test_trials_of_a_study_share_one_wandb_group():
    from omegaconf import OmegaConf

    from bridgeeval.tracking.loggers import _study_group

    assert _study_group(OmegaConf.create({"sweep_trial": {"study_name": "grid-1"}})) == "optuna:grid-1"
    assert _study_group(OmegaConf.create({"sweep_trial": {"study_name": None}})) is None  # plain runs


def test_slurm_launcher_config_composes_with_documented_defaults(monkeypatch):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    monkeypatch.setenv("BRIDGEEVAL_SLURM_PARTITION", "gpu-short")
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        overrides = ["hparams_search=paper_grid", "hydra/launcher=slurm"]
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.bridgeeval_optuna_sweeper.slurm_launcher.SlurmLauncher"
    assert launcher.partition == "gpu-short" and launcher.array_parallelism == 32
    # defaults that fit a small node (2 CPUs, 4 GB, 1 h per trial), documented in docs/sweeps.md
    resources = (launcher.cpus_per_task, launcher.mem_gb, launcher.timeout_min, launcher.gpus_per_node)
    assert resources == (2, 4, 60, 0)
    # submitit's logs live inside the sweep's own (never colliding) folder
    assert OmegaConf.to_container(launcher)["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"


def test_a_multi_objective_study_is_readable(tmp_path, capsys):
    """The stock example's two objectives: best and status list the Pareto front (was
    'RuntimeError: A single direction cannot be retrieved'); report --study says where to look."""
    from bridgeeval.cli import main

    from bridgeeval.sweeps.storage import open_storage

    url = f"journal:///{tmp_path}/mo.log"
    study = optuna.create_study(study_name="mo", storage=open_storage(url), directions=["minimize", "maximize"])
    for x in (0.0, 1.0, 2.0, 3.0):
        trial = study.ask()
        value = trial.suggest_float("x", x, x)
        trial.set_user_attr("overrides", [f"x={value}"])
        study.tell(trial, [value**2, value])  # a smaller square against a larger x: each trial trades
    front = sorted(t.number for t in study.best_trials)
    assert main(["sweep", "best", "mo", "--storage", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["direction"] == "minimize, maximize" and sorted(t["number"] for t in info["pareto"]) == front
    assert all(t["command"].startswith("python train.py x=") for t in info["pareto"])
    assert main(["sweep", "best", "mo", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert f"Pareto front: {len(front)} trial(s)" in out and "objectives 9, 3" in out
    assert main(["sweep", "status", "mo", "--storage", url]) == 0
    assert "Pareto front so far: trial" in capsys.readouterr().out
    assert main(["report", "--study", "mo", "--storage", url]) == 2
    assert "has 2 objectives and no single best trial" in capsys.readouterr().err


def test_status_counts_what_the_sweeper_counts(tmp_path, capsys):
    """A lost trial past max_retries is failed for the sweeper; status said 'lost (requeued)'."""
    from bridgeeval.cli import main
    from bridgeeval.sweeps.best import RETRIES_ATTR
    from bridgeeval.sweeps.storage import open_storage

    url = f"journal:///{tmp_path}/st.log"
    study = optuna.create_study(study_name="st", storage=open_storage(url))
    for retries, expected in ((0, "1 failed"), (2, "1 lost")):
        study.set_user_attr(RETRIES_ATTR, retries)
        if not study.trials:
            trial = study.ask()
            trial.suggest_float("x", 1.0, 1.0)
            assert co.end_trial(study, trial.number, "lost: Slurm job 7 FAILED", co.LOST)
        assert main(["sweep", "status", "st", "--storage", url, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["trials"] == {expected.split()[1]: 1}
        assert info["failures"][0]["requeued"] is (retries > 0)


def test_a_second_grid_on_one_study_name_is_refused_before_it_adds_anything(tmp_path):
    url = f"journal:///{tmp_path}/grid.log"
    base = [f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"]
    run_sweep(tmp_path, grid_params(lr="0.001", hidden="64"), *base)
    before = len(study_of(url).trials)
    proc = run_sweep(tmp_path, grid_params(lr="0.001", hidden="64,128"), *base, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bridgeeval: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "study 's' searches " in errors[0] and "mapper.hidden_units: choice(64)" in errors[0]
    assert "this sweep searches " in errors[0] and "mapper.hidden_units: choice(64, 128)" in errors[0]
    assert len(study_of(url).trials) == before  # no foreign waiting points left in the study
    run_sweep(tmp_path, grid_params(lr="0.001", hidden="64"), *base)  # the same grid resumes as before


def test_a_storage_that_becomes_read_only_mid_sweep_is_one_line_and_resumes(tmp_path):
    """The journal made immutable (chattr +i: unwritable even for root) after the first trial:
    one line and exit 2, where it was a 42-line traceback; writable again, the rerun finishes."""
    if not chattr_works(tmp_path):
        pytest.skip("chattr +i is not supported on this file system")
    journal = tmp_path / "j.log"
    args = [grid_params(hidden="64,128", lr="0.001,0.0001"), f"hydra.sweeper.storage=journal:///{journal}",
            "hydra.sweeper.study_name=s"]
    # Trials of 8 epochs: three are still to run when the first completes and the journal is locked.
    proc = subprocess.Popen(sweep_cmd(tmp_path, *args, "trainer.max_epochs=8"), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if journal.exists() and study_of(f"journal:///{journal}").get_trials(states=(TrialState.COMPLETE,)):
                break
            time.sleep(0.2)
        subprocess.run(["chattr", "+i", str(journal)], check=True)
        _, err = proc.communicate(timeout=240)
    finally:
        subprocess.run(["chattr", "-i", str(journal)], capture_output=True)
    errors = [line for line in err.splitlines() if line.startswith("bridgeeval:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert f"sweep stopped: cannot write {journal}: Operation not permitted" in errors[0]
    run_sweep(tmp_path, *args)
    assert len(set(completed_points(study_of(f"journal:///{journal}")))) == 4


def test_status_of_a_met_budget_says_why_points_wait_and_no_time_left(tmp_path, capsys):
    """It printed '1/1 done; ... 2 waiting' and 'time left ... 0 s'."""
    from bridgeeval.cli import main
    from bridgeeval.sweeps.best import TARGET_ATTR
    from bridgeeval.sweeps.storage import open_storage

    url = f"journal:///{tmp_path}/b.log"
    study = optuna.create_study(study_name="b", storage=open_storage(url))
    study.set_user_attr(TARGET_ATTR, 1)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    for x in (0.2, 0.3):
        study.enqueue_trial({"x": x})
    assert main(["sweep", "status", "b", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "1/1 done" in out and "the 2 waiting run when the sweep is resumed with a larger" in out
    assert "time left" not in out
