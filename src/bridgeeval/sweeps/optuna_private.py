"""The Optuna internals the sweeper needs, in one place; everything else uses Optuna's public API.

Workers that share a study must move a WAITING trial to RUNNING atomically and write system
attributes of trials they do not hold as ``optuna.Trial`` objects: Optuna offers that only
through its storage (``study._storage``, with the study's and trials' internal ids). Each access
goes through a function here, and :func:`check` (run by the tests on every Optuna the project
installs) fails loudly, naming the internal, when a release changes one.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage


def storage_of(study: optuna.Study) -> BaseStorage:
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    return study._study_id


def trial_id_of(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    return trial._trial_id


def trial_id(study: optuna.Study, number: int) -> int:
    """The storage's id of the study's trial ``number``."""
    return storage_of(study).get_trial_id_from_study_id_trial_number(study_id_of(study), number)


def trial_handle(study: optuna.Study, tid: int) -> optuna.Trial:
    """A live ``optuna.Trial`` for a trial this process claimed in the storage."""
    return optuna.Trial(study, tid)


def check(study: optuna.Study | None = None) -> None:
    """Each internal above still means what the sweeper takes it to mean (RuntimeError otherwise)."""
    study = study or optuna.create_study()
    prefix = f"Optuna {optuna.__version__} changed what bridgeeval's sweeper relies on: "
    try:
        asked = study.ask()
    except Exception as err:  # noqa: BLE001 - whatever a changed internal raises, it is named
        raise RuntimeError(f"{prefix}Study._storage or Study._study_id no longer reach the study "
                           f"({type(err).__name__}: {err}) (bridgeeval/sweeps/optuna_private.py)") from err
    problems = []
    if not isinstance(getattr(study, "_storage", None), BaseStorage):
        problems.append("Study._storage is no longer the study's storage")
    try:
        same = trial_id(study, asked.number) == getattr(asked, "_trial_id", None)
    except Exception:  # noqa: BLE001 - whatever a changed internal raises, it is named below
        same = False
    if not same:
        problems.append("Trial._trial_id or Study._study_id no longer identify a trial in its storage")
    frozen = study.get_trials(deepcopy=False)[-1]
    if getattr(frozen, "_trial_id", None) != trial_id_of(asked):
        problems.append("FrozenTrial._trial_id no longer identifies a trial")
    handle = trial_handle(study, trial_id_of(asked))
    if handle.number != asked.number:
        problems.append("optuna.Trial(study, trial_id) no longer gives that trial")
    if problems:
        raise RuntimeError(prefix + "; ".join(problems) + " (bridgeeval/sweeps/optuna_private.py)")
