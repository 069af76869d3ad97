"""The Optuna internals the sweeper relies on, checked on the Optuna installed (fails loudly when a
release changes one: bridgeeval/sweeps/optuna_private.py)."""

from __future__ import annotations

import optuna
import pytest

from bridgeeval.sweeps import optuna_private as private
from bridgeeval.sweeps.storage import open_storage


@pytest.mark.parametrize("kind", ["memory", "journal", "sqlite"])
def test_the_internals_mean_what_the_sweeper_takes_them_to_mean(tmp_path, kind):
    storage = {"memory": lambda: None, "journal": lambda: open_storage(f"journal:///{tmp_path}/j.log"),
               "sqlite": lambda: open_storage(f"sqlite:////{tmp_path}/s.db")}[kind]()
    study = optuna.create_study(study_name="p", storage=storage)
    study.ask()  # a second trial: ids and numbers need not coincide
    private.check(study)
    last = study.get_trials(deepcopy=False)[-1]
    assert private.trial_id(study, last.number) == private.trial_id_of(last)


def test_a_changed_internal_is_named():
    study = optuna.create_study()
    study._study_id = 12345  # as a release that renamed or repurposed it would leave it
    with pytest.raises(RuntimeError, match=r"Optuna .* changed what bridgeeval's sweeper relies on: .*Study._study_id"):
        private.check(study)
