"""Neighbourhood metrics: a functional core that knows nothing of Lightning or Hydra."""

from bridgeeval.metrics.neighbours import knn_indices, knn_indices_of_rows
from bridgeeval.metrics.overlap import mnno, mnno_from_indices, mnno_sampled, nn_overlap
from bridgeeval.metrics.report import NEIGHBOUR_KEYS, REPORT_KEYS, cross_modal_report, hubness, r2_score, recall_at_k
from bridgeeval.metrics.torchmetric import CrossModalReport, MeanNearestNeighborOverlap
from bridgeeval.metrics.kernel_measures import cka, cknna
from bridgeeval.metrics.knn_measures import cycle_knn, edit_distance_knn, lcs_knn, mutual_knn
from bridgeeval.metrics.measures import MEASURES, MappedAlignment, alignment_report, measure
from bridgeeval.metrics.representation import Representation
from bridgeeval.metrics.rsa_measures import rsa, rsa_sampled
from bridgeeval.metrics.subspace_measures import procrustes, svcca

__all__ = [
    "MEASURES",
    "MappedAlignment",
    "Representation",
    "alignment_report",
    "cka",
    "cknna",
    "cycle_knn",
    "edit_distance_knn",
    "lcs_knn",
    "measure",
    "mutual_knn",
    "procrustes",
    "rsa",
    "rsa_sampled",
    "svcca",
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
