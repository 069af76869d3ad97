"""Neighbourhood metrics: a functional core that knows nothing of Lightning or Hydra."""

from bridgeeval.metrics.neighbours import knn_indices, knn_indices_of_rows
from bridgeeval.metrics.overlap import mnno, mnno_from_indices, mnno_sampled, nn_overlap
from bridgeeval.metrics.report import NEIGHBOUR_KEYS, REPORT_KEYS, cross_modal_report, hubness, r2_score, recall_at_k
from bridgeeval.metrics.torchmetric import CrossModalReport, MeanNearestNeighborOverlap

__all__ = [
    "NEIGHBOUR_KEYS",
    "REPORT_KEYS",
    "CrossModalReport",
    "MeanNearestNeighborOverlap",
    "cross_modal_report",
    "hubness",
    "knn_indices",
    "knn_indices_of_rows",
    "mnno",
    "mnno_from_indices",
    "mnno_sampled",
    "nn_overlap",
    "r2_score",
    "recall_at_k",
]
