"""``bridgeeval sweep best|status``: what a study holds, and its best configuration."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from bridgeeval.errors import BridgeEvalError
from bridgeeval.sweeps.storage import open_storage, redact


def default_storage(study_name: str, log_dir: str | Path = "outputs") -> str:
    """Where the sweeper keeps a study by default: ``sqlite:///<log_dir>/optuna/<study>.db``."""
    return f"sqlite:///{Path(log_dir) / 'optuna' / f'{study_name}.db'}"


def load(study_name: str, storage: str | None) -> optuna.Study:
    url = storage or default_storage(study_name)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise BridgeEvalError(f"no study database at {url[len('sqlite:///') :]} (pass --storage)")
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(open_storage(url))) or "none"
        raise BridgeEvalError(f"study {study_name!r} not found in {redact(url)} (studies: {names})") from None


def summary(study: optuna.Study) -> dict:
    """Counts by state, the best trial's value, params, cross-validated metrics and command line."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    out = {"study": study.study_name, "direction": study.direction.name.lower(), "trials": counts}
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        out["best"] = None
        return out
    best = study.best_trial
    metrics = best.user_attrs.get("metrics", {})
    out["best"] = {
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "metrics": {k: v for k, v in sorted(metrics.items()) if k.startswith(("val/", "train/"))},
        "output_dir": best.user_attrs.get("output_dir"),
        "command": "python train.py "
        + " ".join(best.user_attrs.get("overrides") or [f"{k}={v}" for k, v in best.params.items()]),
    }
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if failed:
        out["failures"] = {t.number: t.user_attrs.get("error", "") for t in failed[-5:]}
    return out


def format_summary(info: dict) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in info["trials"].items() if n)
    lines = [f"study {info['study']} ({info['direction']}): {counts or 'no trials'}"]
    best = info.get("best")
    if not best:
        lines.append("no finished trial yet")
        return "\n".join(lines)
    lines.append(f"best: trial {best['number']}, objective {best['value']:.6g}")
    lines += [f"  {k} = {v}" for k, v in best["params"].items()]
    metrics = best["metrics"]
    if metrics:
        lines.append("cross-validated metrics (mean +- std over folds):")
        for key in sorted(k for k in metrics if not k.endswith("_std")):
            std = metrics.get(f"{key}_std")
            lines.append(f"  {key:32s} {metrics[key]:.4f}" + (f" +- {std:.4f}" if std is not None else ""))
    if best.get("output_dir"):
        lines.append(f"job folder: {best['output_dir']}")
    lines.append(f"rerun: {best['command']}")
    for number, error in (info.get("failures") or {}).items():
        lines.append(f"failed trial {number}: {error.splitlines()[0] if error else ''}")
    return "\n".join(lines)
