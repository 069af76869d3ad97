"""Losses of the paper: MSE, cosine (1 - cos) and max-margin with the first violating negative."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bridgeeval.errors import BridgeEvalError

LOSSES = ("mse", "cosine", "max_margin")


def different_class(classes: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` bool: items i and j share no class (int codes, or multi-hot rows sharing no label)."""
    if classes.ndim == 2:
        c = classes.float()
        return (c @ c.T) == 0
    return classes.unsqueeze(1) != classes.unsqueeze(0)


def max_margin_loss(mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor, margin: float) -> torch.Tensor:
    """mean_i max(0, margin - cos(f_i, y_i) + cos(f_i, y_j)), j the first item of the batch of another
    class that violates the margin (Lazaridou et al. 2015; Weston et al. 2011); 0 where none does.

    Example:
        >>> f = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> # item 0: 0.5 - cos 1 + cos 1 = 0.5; item 1: 0.5 - cos 0 + cos 0 = 0.5
        >>> float(max_margin_loss(f, y, torch.tensor([0, 1]), margin=0.5))
        0.5
    """
    return max_margin_per_item(mapped, target, classes, margin).mean()


def max_margin_per_item(mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor, margin: float) -> torch.Tensor:
    """Each item's hinge of :func:`max_margin_loss` (its negatives are the batch's items)."""
    sims = F.normalize(mapped, dim=1) @ F.normalize(target, dim=1).T
    positive = sims.diagonal()
    hinge = margin - positive.unsqueeze(1) + sims
    violating = (hinge > 0) & different_class(classes)
    first = violating.int().argmax(dim=1)  # index of the first True (0 where none)
    chosen = hinge.gather(1, first.unsqueeze(1)).squeeze(1)
    return torch.where(violating.any(dim=1), chosen, torch.zeros_like(chosen))


class MappingLoss(nn.Module):
    """A loss of the paper as a module: ``loss(mapped, target, classes)``, the mean of
    ``per_item``. One subclass per loss, each the ``_target_`` of its ``conf/loss/*.yaml``."""

    name = ""
    needs_negatives = False  # items of another class in the batch (the data is checked first)

    @classmethod
    def check(cls) -> None:
        """The loss's settings, checked before anything is built (none by default)."""

    def forward(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return self.per_item(mapped, target, classes).mean()

    def per_item(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Each item's loss; their mean is the batch's loss."""
        raise NotImplementedError


class MSELoss(MappingLoss):
    """Mean squared error between f(x) and y (``loss=mse``)."""

    name = "mse"

    def forward(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(mapped, target)  # the per-item mean's value (every row has the same width)

    def per_item(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return ((mapped - target) ** 2).mean(dim=1)


class CosineLoss(MappingLoss):
    """1 - cos(f(x), y) (``loss=cosine``)."""

    name = "cosine"

    def per_item(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return 1.0 - F.cosine_similarity(mapped, target, dim=1)


class MaxMarginLoss(MappingLoss):
    """:func:`max_margin_loss` with its ``margin`` (``loss=max_margin``); the margin's value lives
    in ``conf/loss/max_margin.yaml``."""

    name = "max_margin"
    needs_negatives = True

    def __init__(self, margin: float):
        super().__init__()
        self.check(margin)
        self.margin = float(margin)

    @classmethod
    def check(cls, margin: float | None = None) -> None:
        if margin is None:
            raise BridgeEvalError(f"loss.margin is required for loss={cls.name}")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise BridgeEvalError(f"loss.margin={margin!r}: expected a number")
        if not (math.isfinite(margin) and margin > 0):
            raise BridgeEvalError(f"loss.margin={margin!r}: must be a positive, finite number")

    def per_item(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return max_margin_per_item(mapped, target, classes, self.margin)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


LOSSES: dict[str, type[MappingLoss]] = {cls.name: cls for cls in (MSELoss, CosineLoss, MaxMarginLoss)}
