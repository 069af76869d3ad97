"""``CrossModalReport``: the cross-modal report (three mNNOs, MSE, R^2, recall@K, hubness) as a
torchmetrics ``Metric``."""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.hub_retrieval import hub_retrieval
from bridgeeval.metrics.measures import MappedAlignment
from bridgeeval.metrics.neighbours import knn_indices
from bridgeeval.metrics.report import TargetSide, cross_modal_report, neighbour_flatness
from bridgeeval.metrics.sharding import sharded_search
from bridgeeval.metrics.validation import check_metric


class CrossModalReport(Metric):
    """Accumulates (input, target, mapped) batches and reports over the whole epoch: the values of
    :func:`~bridgeeval.metrics.cross_modal_report` (``REPORT_KEYS``).

    States are concatenated across processes (``dist_reduce_fx="cat"``), so under DDP every rank
    computes the report of the full validation set. ``index`` (the items' positions) restores the
    data set's order after the gather, which lets cached neighbour lists of X and Y be reused.
    ``measures`` adds named alignment measures (``metrics.measures``) as ``{name}_{pair}`` keys,
    from the same neighbour lists; X's and Y's parts are kept across epochs (``MappedAlignment``).
    ``retrieval`` adds recall@1, the CSLS forms and the targets' hubness (``metrics.hub_retrieval``).

    Example:
        >>> import torch
        >>> metric = CrossModalReport(k=1, metric="euclidean")
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
        >>> metric.update(x[:2], x[:2], x[:2]); metric.update(x[2:], x[2:], x[2:])
        >>> metric.compute()["mnno_input_mapped"]
        1.0
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, k: int = 10, metric: str = "cosine", include_self: bool = False, measures=(),
                 measure_options=None, retrieval: bool = False, **kwargs):
        super().__init__(**kwargs)
        check_metric(metric)
        self.k, self.metric, self.include_self, self.retrieval = k, metric, include_self, retrieval
        self.alignment = MappedAlignment(measures, k, metric, include_self, measure_options)
        self.add_state("inputs", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")
        self.add_state("mapped", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self._cached: dict[str, torch.Tensor] = {}
        self._targets: TargetSide | None = None
        self._flat: dict[str, str | None] = {}

    def update(self, inputs: torch.Tensor, targets: torch.Tensor, mapped: torch.Tensor, index=None) -> None:
        if not (len(inputs) == len(targets) == len(mapped)):
            raise BridgeEvalError(
                f"batch sizes differ: input {len(inputs)}, target {len(targets)}, mapped {len(mapped)}"
            )
        if index is None:
            start = sum(len(t) for t in self.index)
            index = torch.arange(start, start + len(inputs), device=inputs.device)
        self.inputs.append(inputs.detach())
        self.targets.append(targets.detach())
        self.mapped.append(mapped.detach())
        self.index.append(torch.as_tensor(index, device=inputs.device))

    def cache_reference(self, input_neighbours: torch.Tensor, target_neighbours: torch.Tensor,
                        targets: torch.Tensor | None = None, inputs: torch.Tensor | None = None) -> None:
        """Neighbour lists of X and Y in index order, reused by every ``compute``; with ``targets``
        (Y in index order) also what the report derives from Y alone (``TargetSide``); with both
        sets, whether either is flat (``metrics.flatness``)."""
        self._cached = {"input": input_neighbours, "target": target_neighbours}
        self._targets = None if targets is None else TargetSide(targets.detach(), self.metric)
        self._flat = {} if targets is None or inputs is None else {
            name: neighbour_flatness(t.detach(), name, self.metric) for name, t in (("input", inputs), ("target", targets))}

    def compute(self) -> dict[str, float]:
        # Under DDP every process holds the whole gathered epoch: they share its searches.
        with sharded_search():
            return self._compute()

    def _compute(self) -> dict[str, float]:
        index = dim_zero_cat(self.index)
        # None where the batches already are in item order, each once (one process, no shuffling).
        order = None if bool((index[1:] > index[:-1]).all()) else first_of_each(index)
        x, f = (_in_order(s, order) for s in (self.inputs, self.mapped))
        shape = (len(x), (self.targets[0] if isinstance(self.targets, list) else self.targets).shape[-1])
        targets = self._targets if self._targets is not None and self._targets.fits(
            shape, self.metric, f.device) else None
        # The report reads cached targets rather than y: y is gathered only where another reads it.
        reads_y = targets is None or bool(self.alignment) or self.retrieval
        y = _in_order(self.targets, order) if reads_y else targets.y64
        lists = dict(self._cached)
        if self.alignment:  # f(X)'s neighbours searched once for the report and the measures
            lists["mapped"] = knn_indices(f, self.k, self.metric, self.include_self, name="mapped")
        report = cross_modal_report(x, y, f, k=self.k, metric=self.metric, include_self=self.include_self,
                                    neighbours=lists, targets=targets, flat=self._flat if targets is not None else None)
        if self.alignment:
            report.update(self.alignment(x, y, f, lists))
        if self.retrieval:  # recall@1 and the hubness corrections (recall_at_k is the report's own)
            report.update(hub_retrieval(f, y, self.k, self.metric))
        return report


class ItemMean(Metric):
    """The mean of per-item values over an epoch, each item once: under DDP the values of all ranks
    are gathered and a distributed sampler's padded repeats dropped, so the mean is the
    single-process one (Lightning's per-rank means, averaged, would count the repeats).

    Example:
        >>> import torch
        >>> mean = ItemMean()
        >>> mean.update(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
        >>> mean.update(torch.tensor([3.0, 1.0]), torch.tensor([2, 0]))  # item 0 again: a padded repeat
        >>> float(mean.compute())
        2.0
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")

    def update(self, values: torch.Tensor, index: torch.Tensor) -> None:
        if values.shape != index.shape:
            raise BridgeEvalError(f"values have shape {tuple(values.shape)}, index {tuple(index.shape)}")
        self.values.append(values.detach().double())
        self.index.append(torch.as_tensor(index, device=values.device))

    def compute(self) -> torch.Tensor:
        return dim_zero_cat(self.values)[first_of_each(dim_zero_cat(self.index))].mean()


# The name of earlier versions (it returns seven values, not one mNNO).
MeanNearestNeighborOverlap = CrossModalReport


def _in_order(batches: list[torch.Tensor] | torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """The batches (one tensor once synced across processes) in item order (:func:`first_of_each`;
    None: as they are)."""
    rows = dim_zero_cat(batches)
    return rows if order is None else rows[order]


def first_of_each(index: torch.Tensor) -> torch.Tensor:
    """Positions that put the gathered items in index order, each item once: a distributed sampler
    pads an uneven set with repeats of its first items, which must not count twice."""
    order = torch.argsort(index, stable=True)
    ranked = index[order]
    keep = torch.ones_like(ranked, dtype=torch.bool)
    keep[1:] = ranked[1:] != ranked[:-1]
    return order[keep]
