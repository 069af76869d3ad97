"""``bridgeeval sweep best|status``: a study's best configuration, and its progress."""

from __future__ import annotations

import shlex
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from bridgeeval.errors import BridgeEvalError
from bridgeeval.sweeps import coordination as co
from bridgeeval.sweeps.settings import default_storage
from bridgeeval.sweeps.storage import open_storage, parse_url, redact

TARGET_ATTR = "bridgeeval:target"  # study user attr: the trials the sweep was asked to finish
RETRIES_ATTR = "bridgeeval:max_retries"  # study user attr: the sweeper's max_retries, for status's tally


def load(study_name: str, storage: str | None) -> optuna.Study:
    where = parse_url(storage or default_storage(study_name))
    if where.path is not None and not where.path.is_file():
        raise BridgeEvalError(f"no study storage at {where.path} (pass --storage)")
    opened = open_storage(where)
    try:
        return optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = [s.study_name for s in opened.get_all_studies() if not co.is_lock_study(s.study_name)]
        raise BridgeEvalError(
            f"study {study_name!r} not found in {redact(where.url)} (studies: {', '.join(names) or 'none'})"
        ) from None


def retrain_command(overrides: list[str], epochs: int | None = None) -> str:
    """``train.py`` with a trial's own overrides, once: ``hydra.mode=RUN`` keeps the sweep preset's
    settings (folds, objective) but runs no sweeper, and no ``sweep_trial`` ties it to the study;
    ``epochs``, the count CV chose, replaces the budget."""
    dropped = ("sweep_trial.", "hydra.mode=") + (("trainer.max_epochs=",) if epochs else ())
    kept = [o for o in overrides if not o.lstrip("+~").startswith(dropped)]
    chosen = [f"trainer.max_epochs={epochs}"] if epochs else []
    return "python train.py " + " ".join(shlex.quote(o) for o in [*kept, *chosen, "hydra.mode=RUN"])


def max_retries_of(study: optuna.Study) -> int:
    """The sweeper's ``max_retries`` as it stored it, so status counts what the sweeper counts
    (a study from before it was stored: every lost trial shows as lost)."""
    value = study.user_attrs.get(RETRIES_ATTR)
    return int(value) if isinstance(value, int) else 10**6


def _counts(trials: list[FrozenTrial], max_retries: int) -> dict[str, int]:
    tally = co.tally(trials, max_retries=max_retries)
    return {k: v for k, v in vars(tally).items() if v}


def direction_of(study: optuna.Study) -> str:
    """``minimize``, or one direction per objective (``minimize, maximize``)."""
    return ", ".join(d.name.lower() for d in study.directions)


def summary(study: optuna.Study) -> dict:
    """The best trial: value, params, cross-validated metrics, job folder and a retrain command; for
    several objectives, every trial of the Pareto front (``pareto``) the same way."""
    trials = study.get_trials(deepcopy=False)
    out = {"study": study.study_name, "direction": direction_of(study),
           "trials": _counts(trials, max_retries_of(study))}
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(study.directions) > 1:
        out["pareto"] = [_described(t) for t in study.best_trials] if done else []
        return out
    out["best"] = _described(study.best_trial) if done else None
    return out


def _described(trial: FrozenTrial) -> dict:
    metrics = trial.user_attrs.get("metrics", {})
    overrides = trial.user_attrs.get("overrides") or [f"{k}={v}" for k, v in trial.params.items()]
    epochs, budget = metrics.get("best_epoch"), metrics.get("epoch_budget")
    epochs = int(epochs) if epochs else None  # recorded by jobs with cv.select_epoch=true
    return {
        "number": trial.number,
        "value": trial.value if len(trial.values or []) == 1 else None,
        "values": list(trial.values or []),
        "params": trial.params,
        "best_epoch": epochs,
        "epoch_budget": int(budget) if epochs and budget else None,
        "metrics": _chosen_metrics(metrics, bool(epochs)),
        "output_dir": trial.user_attrs.get("output_dir"),
        "command": retrain_command(list(overrides), epochs),
    }


def _chosen_metrics(metrics: dict, at_best_epoch: bool) -> dict:
    """The trial's cross-validated values: at the epoch CV chose where it chose one (the values a
    retrain for that many epochs gives), else after its last epoch."""
    if at_best_epoch:
        suffix = "@best_epoch"
        return {k[: -len(suffix)]: v for k, v in sorted(metrics.items()) if k.endswith(suffix)}
    return {k: v for k, v in sorted(metrics.items()) if k.startswith(("val/", "train/"))}


def status(study: optuna.Study, now: float | None = None) -> dict:
    """Progress: counts by state, trials in flight (worker, Slurm job, heartbeat age), recent
    failures with their reasons, and the time left at the pace of the finished trials."""
    now = time.time() if now is None else now
    trials = study.get_trials(deepcopy=False)
    retries = max_retries_of(study)
    counts = co.tally(trials, max_retries=retries)
    target = study.user_attrs.get(TARGET_ATTR)
    out: dict = {
        "study": study.study_name,
        "direction": direction_of(study),
        "trials": _counts(trials, retries),
        "target": target,
        "done": counts.done,
    }
    out["running"] = [
        {
            "number": t.number,
            "params": co.point_of(t),
            "worker": t.system_attrs.get(co.OWNER),
            "slurm_job": t.user_attrs.get("slurm_job") or t.system_attrs.get(co.OWNER_JOB),
            "heartbeat_age_s": round(now - float(t.system_attrs[co.HEARTBEAT]), 1)
            if co.HEARTBEAT in t.system_attrs
            else None,
            "running_s": round(now - t.datetime_start.timestamp(), 1) if t.datetime_start else None,
        }
        for t in trials
        if t.state == TrialState.RUNNING
    ]
    failed = [t for t in trials if t.state == TrialState.FAIL and not t.system_attrs.get(co.VOID)]
    retried = co.retried_numbers(trials)
    out["failures"] = [
        {"number": t.number, "requeued": co.kind_of(t, retried, retries) in ("lost", "superseded"),
         "error": str(t.user_attrs.get("error", ""))}
        for t in failed[-10:]
    ]
    out["eta_s"] = _eta(trials, counts, target)
    if len(study.directions) > 1:
        out["pareto"] = [{"number": t.number, "values": list(t.values)} for t in study.best_trials]
        return out
    try:
        out["best"] = {"number": study.best_trial.number, "value": study.best_value}
    except ValueError:
        out["best"] = None
    return out


def _eta(trials: list[FrozenTrial], counts: co.Tally, target) -> float | None:
    spans = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.state in co.FINISHED and t.datetime_start and t.datetime_complete
    ]
    if not target or not spans:
        return None
    left = max(0, int(target) - counts.done)
    if not left:  # the sweep's budget is met: nothing is left to time
        return None
    return left * (sum(spans) / len(spans)) / max(1, counts.running)


def format_summary(info: dict) -> str:
    lines = [f"study {info['study']} ({info['direction']}): {_counts_text(info['trials'])}"]
    if "pareto" in info:
        if not info["pareto"]:
            return "\n".join([*lines, "no completed trial yet"])
        lines.append(f"Pareto front: {len(info['pareto'])} trial(s)")
        for trial in info["pareto"]:
            lines += _trial_lines(trial, f"trial {trial['number']}, objectives {_values_text(trial['values'])}")
        return "\n".join(lines)
    best = info.get("best")
    if not best:
        lines.append("no completed trial yet")
        return "\n".join(lines)
    lines += _trial_lines(best, f"best: trial {best['number']}, objective {best['value']:.6g}")
    return "\n".join(lines)


def _values_text(values: list[float]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def _trial_lines(best: dict, head: str) -> list[str]:
    lines = [head]
    lines += [f"  {k} = {v}" for k, v in best["params"].items()]
    metrics = best["metrics"]
    if metrics:
        lines.append("cross-validated metrics (mean +- std over folds):")
        for key in sorted(k for k in metrics if not k.endswith("_std")):
            std = metrics.get(f"{key}_std")
            lines.append(f"  {key:32s} {metrics[key]:.4f}" + (f" +- {std:.4f}" if std is not None else ""))
    if best.get("best_epoch"):
        last = best["best_epoch"] == best.get("epoch_budget")
        lines.append(f"epochs chosen by CV: {best['best_epoch']} of {best.get('epoch_budget')}"
                     + (" (the budget's last: the curve may still improve; raise trainer.max_epochs)" if last else ""))
    if best.get("output_dir"):
        lines.append(f"job folder: {best['output_dir']}")
    lines.append(f"retrain it once: {best['command']}")
    return lines


def format_status(info: dict) -> str:
    target = info.get("target")
    progress = f"{info['done']}/{target} done" if target else f"{info['done']} done"
    lines = [f"study {info['study']} ({info['direction']}): {progress}; {_counts_text(info['trials'])}"]
    if target and info["done"] >= target and info["trials"].get("waiting"):
        lines.append(f"the run's {target} trial(s) are done; the {info['trials']['waiting']} waiting run when the "
                     "sweep is resumed with a larger hydra.sweeper.n_trials")
    if info.get("eta_s") is not None:
        lines.append(f"time left at the finished trials' pace: {_duration(info['eta_s'])}")
    if info.get("best"):
        lines.append(f"best so far: trial {info['best']['number']}, objective {info['best']['value']:.6g}")
    if info.get("pareto"):
        front = "; ".join(f"trial {t['number']} ({_values_text(t['values'])})" for t in info["pareto"])
        lines.append(f"Pareto front so far: {front}")
    for r in info["running"]:
        beat = f"heartbeat {r['heartbeat_age_s']:.0f} s ago" if r["heartbeat_age_s"] is not None else "no heartbeat"
        job = f", Slurm job {r['slurm_job']}" if r.get("slurm_job") else ""
        ran = f", running {_duration(r['running_s'])}" if r.get("running_s") is not None else ""
        lines.append(f"running trial {r['number']} on {r['worker'] or '?'}{job}{ran}, {beat}: {r['params']}")
    for f in info["failures"]:
        first = f["error"].splitlines()[0] if f["error"] else "?"
        lines.append(f"failed trial {f['number']}{' (requeued)' if f['requeued'] else ''}: {first}")
    return "\n".join(lines)


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no trials"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
