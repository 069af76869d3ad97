"""Our sweeper as a drop-in for the stock ``hydra-optuna-sweeper``.

The scenarios are those of the stock plugin's own test file (facebookresearch/hydra,
``plugins/hydra_optuna_sweeper/tests/test_optuna_sweeper_plugin.py``, tag v1.3.2), rewritten
against our plugin and current Optuna: the stock file is the reference for each behaviour. The apps
under ``tests/stock_optuna/`` are stock-style Hydra apps with no bridgeeval keys in their configs.
"""

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from bridgeeval.sweeps.space import parse_space

APPS = Path(__file__).resolve().parent / "stock_optuna"


def run_app(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, script, "--multirun", *args], cwd=APPS, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def results(folder: Path):
    return OmegaConf.load(folder / "optimization_results.yaml")


def test_discovery():
    found = [(c.__module__, c.__name__) for c in Plugins.instance().discover(Sweeper)]
    assert ("hydra_plugins.bridgeeval_optuna_sweeper.optuna_sweeper", "OptunaSweeper") in found


@pytest.mark.parametrize(
    "override,expected",
    [
        ("key=choice(1,2)", CategoricalDistribution([1, 2])),
        ("key=choice(true, false)", CategoricalDistribution([True, False])),
        ("key=choice('hello', 'world')", CategoricalDistribution(["hello", "world"])),
        ("key=shuffle(range(1,3))", CategoricalDistribution((1, 2))),
        ("key=range(1,3)", IntDistribution(1, 3)),  # the stock plugin includes the stop value
        ("key=interval(1, 5)", FloatDistribution(1, 5)),
        ("key=int(interval(1, 5))", IntDistribution(1, 5)),
        ("key=tag(log, interval(1, 5))", FloatDistribution(1, 5, log=True)),
        ("key=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
        ("key=range(0.5, 5.5, step=1)", FloatDistribution(0.5, 5.5, step=1)),
    ],
)
def test_distribution_from_override(override, expected):
    space, fixed = parse_space({}, [override])
    actual = space["key"].distribution
    if isinstance(expected, CategoricalDistribution):
        assert isinstance(actual, CategoricalDistribution) and set(actual.choices) == set(expected.choices)
    else:
        assert actual == expected and fixed == []


def test_shuffled_range_is_a_choice_among_its_values():
    for _ in range(20):  # the old code built a range from the shuffled list's ends (random, or a crash)
        space, _ = parse_space({}, ["key=shuffle(range(1, 10))"])
        assert sorted(space["key"].distribution.choices) == list(range(1, 10))


@pytest.mark.parametrize(
    "arguments,searched,fixed",
    [
        (["key=choice(1,2)"], {"key": CategoricalDistribution([1, 2])}, []),
        (["key=5"], {}, ["key=5"]),
        (["key1=choice(1,2)", "key2=5"], {"key1": CategoricalDistribution([1, 2])}, ["key2=5"]),
        (["key1=choice(1,2)", "key2=5", "key3=range(1,3)"],
         {"key1": CategoricalDistribution([1, 2]), "key3": IntDistribution(1, 3)}, ["key2=5"]),
    ],
)
def test_params_from_overrides(arguments, searched, fixed):
    space, got_fixed = parse_space({}, arguments)
    assert {k: p.distribution for k, p in space.items()} == searched and got_fixed == fixed


def test_a_value_fixed_on_the_command_line_leaves_the_search_space():
    space, fixed = parse_space({"x": "choice(1,2)", "y": "choice(3,4)"}, ["y=0"])
    assert list(space) == ["x"] and fixed == ["y=0"]


@pytest.mark.parametrize("with_commandline", [True, False])
def test_sphere_example(tmp_path, with_commandline):
    storage = f"sqlite:///{tmp_path}/test.db"
    args = [f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True", "hydra.sweeper.n_trials=20",
            "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=example",
            "hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=123", "~z"]
    if with_commandline:
        args += ["x=choice(0, 1, 2)", "y=0"]  # y fixed: it leaves the search space
    run_app("sphere.py", *args)
    returns = results(tmp_path)
    best = optuna.load_study(storage=storage, study_name="example").best_trial
    assert returns.name == "optuna" and returns.best_params.x == best.params["x"]
    if with_commandline:
        assert "y" not in returns.best_params and "y" not in best.params
    else:
        assert returns.best_params.y == best.params["y"]
    assert returns.best_value == best.value
    assert returns.best_value <= 2.27  # the stock test's bound for TPE (its 95th percentile over seeds)


@pytest.mark.parametrize("n_trials", [10, 1])
def test_grid_sampler_example(tmp_path, n_trials):
    run_app("sphere.py", "--config-name=grid", f"hydra.sweep.dir={tmp_path}", f"hydra.sweeper.n_trials={n_trials}")
    returns = results(tmp_path)
    assert returns.best_params.x in (-1, 1) and returns.best_params.y in (-1, 0)  # range stops before 1
    assert returns.best_params.z in ("foo", "bar")
    jobs = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit()]
    assert len(jobs) == min(n_trials, 8)  # 2 x 2 x 2 points, each at most once
    if n_trials >= 8:
        assert returns.best_value == 1 and abs(returns.best_params.x) == 1 and returns.best_params.y == 0


def _dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


@pytest.mark.parametrize("with_commandline", [True, False])
def test_multi_objective_example(tmp_path, with_commandline):
    args = [f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True", "hydra.sweeper.n_trials=20",
            "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123"]
    if with_commandline:
        args += ["x=range(0, 5)", "y=range(0, 3)"]
    run_app("multi_objective.py", *args)
    solutions = results(tmp_path).solutions
    assert solutions
    for a in solutions:
        steps = {0} if with_commandline else {0, 0.5}
        assert a.params.x % 1 in steps and a.params.y % 1 in steps
        assert len(a["values"]) == 2
        assert not any(_dominates(b["values"], a["values"]) for b in solutions)


def test_nsgaii_sampler_arguments_reach_optuna(tmp_path):
    run_app("multi_objective.py", f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.n_trials=6",
            "hydra.sweeper.sampler.population_size=3")
    assert len(results(tmp_path).solutions) >= 1


@pytest.mark.parametrize("hook,w", [("__main__.configure", "+w"), (".custom_search_space.configure_plain", "w")])
def test_custom_search_space_example(tmp_path, hook, w):
    """The hook by module path, or relative to the app's script (the newer stock example); a key
    it adds that the config lacks is appended (+w) either way."""
    run_app("custom_search_space.py", f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True",
            "hydra/sweeper/sampler=random", "max_z_difference_from_x=0.3", f"hydra.sweeper.custom_search_space={hook}")
    best = results(tmp_path).best_params
    assert abs(best.x - best.z) <= 0.3 and 0 <= best[w] <= 1


def test_search_space_key_is_refused_with_a_pointer_to_params(tmp_path):
    proc = run_app("sphere.py", f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.search_space={x:{type:float}}",
                   check=False)
    assert proc.returncode == 2
    assert "search_space was removed" in proc.stderr and "hydra.sweeper.params" in proc.stderr


def test_motpe_gives_optunas_removed_message(tmp_path):
    proc = run_app("sphere.py", f"hydra.sweep.dir={tmp_path}", "hydra/sweeper/sampler=motpe", check=False)
    assert proc.returncode == 2 and "MOTPESampler was removed in Optuna 4.0" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("sampler", ["random", "cmaes", "qmc", "gp", "grid"])
def test_every_sampler_of_the_group_runs(tmp_path, sampler):
    args = [f"hydra.sweep.dir={tmp_path}", f"hydra/sweeper/sampler={sampler}", "hydra.sweeper.n_trials=3"]
    if sampler == "grid":
        args += ["x=choice(-1,1)", "y=choice(0,2)"]
    run_app("sphere.py", *args)
    assert math.isfinite(results(tmp_path).best_value)


@pytest.mark.parametrize("max_failure_rate", [0.5, 1.0])
def test_failure_rate(tmp_path, max_failure_rate):
    proc = run_app("sphere.py", f"hydra.sweep.dir={tmp_path}", "hydra.job.chdir=True", "hydra.sweeper.n_trials=20",
                   "hydra.sweeper.n_jobs=2", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123",
                   f"hydra.sweeper.max_failure_rate={max_failure_rate}", "error=true", check=False)
    error = "RuntimeError: cfg.error is True"
    if max_failure_rate < 1.0:
        assert proc.returncode == 2 and error in proc.stderr and "Traceback" not in proc.stderr
    else:
        assert proc.returncode == 0 and error not in proc.stderr


def test_in_memory_study_with_a_generated_name_and_no_injected_keys(tmp_path):
    """Stock defaults (storage: null, study_name: null) in an app with a struct config: no job gets
    keys the app did not declare."""
    run_app("sphere.py", f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.study_name=null", "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2")
    assert len([p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit()]) == 4
    overrides = (tmp_path / "0" / ".hydra" / "overrides.yaml").read_text()
    assert "sweep_trial" not in overrides


def test_float_castable_returns(tmp_path):
    """numpy scalars and 0-d tensors, as Lightning code returns them, are values (stock: float())."""
    import numpy as np
    import torch

    from bridgeeval.sweeps.sweeper import _objective_values

    assert _objective_values(np.float32(1.5), 1) == ([1.5], None)
    assert _objective_values(torch.tensor(2.5), 1) == ([2.5], None)
    assert _objective_values((np.float64(1.0), torch.tensor(2.0)), 2) == ([1.0, 2.0], None)
    assert _objective_values((1.0,), 2)[0] is None and _objective_values("abc", 1)[0] is None


@pytest.fixture(scope="module")
def stock_plugin(tmp_path_factory):
    """The stock plugin itself (v1.2.0, from the package index, without its optuna < 3 pin)."""
    target = tmp_path_factory.mktemp("stock-plugin")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           "hydra-optuna-sweeper==1.2.0"], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"cannot install the stock plugin: {proc.stderr.strip().splitlines()[-1:]}")
    return target


def run_with_stock_discovered_last(stock: Path, script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs a Hydra app with the stock plugin on the end of sys.path: Hydra discovers it last, so
    it takes the shared names (``hydra/sweeper=optuna``, the sampler group)."""
    code = (f"import runpy, sys; sys.path.append({str(stock)!r}); sys.argv = {[script, '--multirun', *args]!r}; "
            f"runpy.run_path({script!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_with_the_stock_plugin_installed_ours_runs_under_its_own_name(tmp_path, stock_plugin):
    proc = run_with_stock_discovered_last(stock_plugin, "sphere.py", f"hydra.sweep.dir={tmp_path}/stock",
                                          "hydra.sweeper.n_trials=2", cwd=APPS)
    assert proc.returncode == 0 and "Best value" in proc.stdout + proc.stderr  # the stock plugin took `optuna`
    proc = run_with_stock_discovered_last(stock_plugin, "sphere.py", f"hydra.sweep.dir={tmp_path}/ours",
                                          "hydra/sweeper=bridgeeval_optuna", "hydra.sweeper.n_trials=2", cwd=APPS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "study sphere: 2/2 done" in proc.stdout + proc.stderr  # ours ran
    assert results(tmp_path / "ours").name == "optuna"


def test_our_sweep_files_run_with_the_stock_plugin_installed(tmp_path, stock_plugin):
    from sweep_helpers import FAST, REPO, grid_params

    proc = run_with_stock_discovered_last(
        stock_plugin, "train.py", "hparams_search=paper_grid", f"paths.log_dir={tmp_path}", *FAST,
        grid_params(lr="0.001", hidden="64"), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1/1 done (1 complete" in proc.stdout + proc.stderr
