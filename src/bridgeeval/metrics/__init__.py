"""Neighbourhood metrics: a functional core that knows nothing of Lightning or Hydra.

The names below are loaded on first use (PEP 562): a command that needs the search alone does not
pay for torchmetrics and SciPy's signal package (about 1.4 s of every start-up otherwise).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {  # public name -> the submodule defining it
    "MEASURES": "measures",
    "MappedAlignment": "measures",
    "Representation": "representation",
    "alignment_report": "measures",
    "cka": "kernel_measures",
    "cknna": "kernel_measures",
    "cycle_knn": "knn_measures",
    "edit_distance_knn": "knn_measures",
    "lcs_knn": "knn_measures",
    "measure": "measures",
    "mutual_knn": "knn_measures",
    "procrustes": "subspace_measures",
    "rsa": "rsa_measures",
    "rsa_sampled": "rsa_measures",
    "svcca": "subspace_measures",
    "NEIGHBOUR_KEYS": "report",
    "REPORT_KEYS": "report",
    "CrossModalReport": "torchmetric",
    "MeanNearestNeighborOverlap": "torchmetric",
    "cross_modal_report": "report",
    "hubness": "report",
    "knn_indices": "neighbours",
    "knn_indices_of_rows": "neighbours",
    "mnno": "overlap",
    "mnno_from_indices": "overlap",
    "mnno_sampled": "overlap",
    "nn_overlap": "overlap",
    "r2_score": "report",
    "recall_at_k": "report",
}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
