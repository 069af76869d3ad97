"""Learning-curve figures (the paper's Fig. 2) for runs and multiruns, and sweep figures."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import atomic_target

CURVES = (
    ("mnno_input_mapped", "mNNO(X, f(X))", "tab:blue"),
    ("mnno_target_mapped", "mNNO(Y, f(X))", "tab:orange"),
)


def save_figure(fig, path: Path) -> list[Path]:
    """Writes ``path`` as PNG and the same name as PDF, each atomically (temp file, then rename)."""
    path = Path(path)
    written = []
    for target in (path.with_suffix(".png"), path.with_suffix(".pdf")):
        with atomic_target(target) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=target.suffix[1:])
        written.append(target)
    plt.close(fig)
    return written


def read_history(job_dir: Path) -> pd.DataFrame:
    path = Path(job_dir) / "history.csv"
    try:
        history = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise BridgeEvalError(f"{path}: cannot read the per-epoch history ({type(err).__name__})") from None
    if "epoch" not in history or "val/mnno_input_mapped" not in history:
        raise BridgeEvalError(f"{path}: no per-epoch mNNO columns")
    return history


def job_label(job_dir: Path) -> str:
    """A job's own overrides (``mapper=lin cv.fold=1``), else its folder name."""
    from bridgeeval.reports.collect import job_overrides

    return " ".join(job_overrides(job_dir) or []) or Path(job_dir).name


def _mean_curve(history: pd.DataFrame, column: str) -> pd.DataFrame | None:
    if column not in history or history[column].isna().all():
        return None
    return history.groupby("epoch")[column].agg(["mean", "std", "count"]).reset_index()


def held_out_name(history: pd.DataFrame) -> str:
    """What the ``val/*`` columns were measured on: the validation folds of cross-validation, or
    the official split's test set."""
    splits = set(history["split"].astype(str)) - {"pooled"} if "split" in history else set()
    if splits and all(name.startswith("fold") for name in splits):
        return "validation" if len(splits) == 1 else f"validation ({len(splits)} folds)"
    return "test"


def draw_curves(ax_mnno, ax_loss, history: pd.DataFrame, title: str = "") -> None:
    """mNNO(X, f(X)) and mNNO(Y, f(X)) per epoch (solid: validation folds or test set, dashed:
    train) and the losses; folds averaged with a +-1 std band."""
    held_out = held_out_name(history)
    names = {"val": held_out, "train": "train", "pooled": "pooled out-of-fold"}
    for key, label, colour in CURVES:
        for stage, style in (("val", "-"), ("train", "--"), ("pooled", ":")):
            curve = _mean_curve(history, f"{stage}/{key}")
            if curve is None:
                continue
            name = f"{label} {names[stage]}"
            ax_mnno.plot(curve["epoch"] + 1, curve["mean"], style, color=colour, label=name,
                         marker="o" if len(curve) == 1 else None)  # one epoch: a point, not an invisible line
            if (curve["count"] > 1).any():
                low, high = curve["mean"] - curve["std"].fillna(0), curve["mean"] + curve["std"].fillna(0)
                ax_mnno.fill_between(curve["epoch"] + 1, low, high, color=colour, alpha=0.15, linewidth=0)
    _draw_baseline(ax_mnno, history, names)
    ax_mnno.set_xlabel("epoch")
    ax_mnno.set_ylabel("mNNO@K")
    ax_mnno.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_mnno.set_title(title, fontsize=9)
    if ax_loss is None:
        return
    for stage, style in (("val", "-"), ("train", "--")):
        curve = _mean_curve(history, f"{stage}/loss")
        if curve is not None:
            name = held_out.split(" (")[0] if stage == "val" else "train"
            ax_loss.plot(curve["epoch"] + 1, curve["mean"], style, color="tab:gray", label=f"loss {name}",
                         marker="o" if len(curve) == 1 else None)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_baseline(ax, history: pd.DataFrame, names: dict[str, str]) -> None:
    """mNNO(X, Y), the two spaces' own overlap, as a flat line: what a map that bridged them
    perfectly would give for mNNO(X, f(X)) and mNNO(Y, f(X)) alike (the paper's reference point)."""
    for stage in ("val", "pooled"):
        column = f"{stage}/mnno_input_target"
        if column in history and not history[column].isna().all():
            ax.axhline(float(history[column].mean()), linestyle="-.", color="tab:gray", linewidth=1,
                       label=f"mNNO(X, Y) {names[stage]}")
            return


def plot_run(job_dir: Path, out: Path) -> list[Path]:
    """The paper's Fig. 2 for one job: mNNO curves (left) and losses (right)."""
    history = read_history(job_dir)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    draw_curves(left, right, history, title=job_label(job_dir))
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_multirun(job_dirs: list[Path], labels: list[str], out: Path) -> list[Path]:
    """A grid with one panel per job: its mNNO curves, and its validation loss on a second axis."""
    if not job_dirs:
        raise BridgeEvalError("no job with a history.csv to plot")
    labels = _distinct(labels)
    cols = min(4, len(job_dirs))
    rows = -(-len(job_dirs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax, job_dir, label in zip(axes.flat, job_dirs, labels):
        history = read_history(job_dir)
        draw_curves(ax, None, history, title=label)
        loss = _mean_curve(history, "val/loss")
        if loss is not None:
            twin = ax.twinx()
            twin.plot(loss["epoch"] + 1, loss["mean"], ":", color="tab:gray")
            twin.tick_params(labelsize=7)
            held_out = held_out_name(history).split(" (")[0]
            ax.plot([], [], ":", color="tab:gray", label=f"{held_out} loss (right axis)")
    for ax in list(axes.flat)[len(job_dirs) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, out)


def plot_jobs(jobs, out: Path) -> list[Path]:
    """The multirun grid for collected jobs (those with a per-epoch history), titled by overrides."""
    dirs = [job.path for job in jobs if (job.path / "history.csv").is_file()]
    return plot_multirun(dirs, [job_label(d) for d in dirs], out)


def _distinct(labels: list[str]) -> list[str]:
    """Drops the overrides every job shares, so that panel titles show what varies."""
    tokens = [label.split() for label in labels]
    common = set.intersection(*map(set, tokens)) if len(tokens) > 1 else set()
    kept = [[t for t in toks if t not in common] for toks in tokens]
    # Values alone when the keys are long (dataset=iaprtc mapper=lin -> iaprtc lin).
    return [" ".join(t.split("=")[-1] if len(k) > 2 else t for t in k) or label for k, label in zip(kept, labels)]


def plot_study(study, out: Path) -> list[Path]:
    """A sweep in one figure at ``out`` (and its PDF twin): ``study_figure``."""
    return save_figure(study_figure(study), out)


def study_figure(study):
    """The objective of each finished trial with the best so far (left), and the importance of
    the hyperparameters that varied (right; left out when none varied or under three trials)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        raise BridgeEvalError(f"study {study.study_name}: no completed trial to plot")
    if len(study.directions) > 1:
        raise BridgeEvalError(f"study {study.study_name}: {len(study.directions)} objectives; plot one-objective studies")
    varied = varied_params(done)
    fig, axes = plt.subplots(1, 2 if varied and len(done) > 2 else 1, figsize=(10, 3.6), squeeze=False)
    _draw_history(axes[0, 0], study, done)
    if axes.shape[1] == 2:
        _draw_importance(axes[0, 1], study, varied)
    fig.tight_layout()
    return fig


def varied_params(trials) -> list[str]:
    """The parameters that took more than one value among these trials (a fixed one has no importance)."""
    names = sorted({name for trial in trials for name in trial.params})
    return [n for n in names if len({repr(t.params.get(n)) for t in trials}) > 1]


def _draw_history(ax, study, done) -> None:
    import optuna

    minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
    numbers = [t.number for t in done]
    values = [t.value for t in done]
    best, running = [], None
    for value in values:
        running = value if running is None else (min if minimize else max)(running, value)
        best.append(running)
    ax.plot(numbers, values, "o", color="tab:blue", markersize=4, label="trial")
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)  # the trials that finished, not the queue
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"objective ({'lower' if minimize else 'higher'} is better)")
    ax.set_title(f"{study.study_name}: {len(done)} finished trial(s)", fontsize=9)
    ax.legend(fontsize=7)


def _draw_importance(ax, study, varied: list[str]) -> None:
    """fANOVA where scikit-learn is installed (Optuna's default), else PED-ANOVA (no extra package)."""
    import optuna

    try:
        import sklearn  # noqa: F401

        evaluator, method = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    except ImportError:
        evaluator, method = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        importance = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
    names = list(importance)[::-1]
    ax.barh(names, [importance[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance ({method})")
    ax.set_title("hyperparameters that varied", fontsize=9)
