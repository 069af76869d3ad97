"""Losses of the paper: MSE, cosine (1 - cos) and max-margin with the first violating negative."""

from __future__ import annotations

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
    """One of the paper's losses as a module: ``loss(mapped, target, classes)``."""

    def __init__(self, name: str, margin: float | None = None):
        super().__init__()
        if name not in LOSSES:
            raise BridgeEvalError(f"loss: unknown {name!r}; choose one of {', '.join(LOSSES)}")
        if name == "max_margin" and margin is None:
            raise BridgeEvalError("loss.margin is required for loss=max_margin")
        self.name, self.margin = name, margin

    def forward(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        if self.name == "mse":
            return F.mse_loss(mapped, target)
        return self.per_item(mapped, target, classes).mean()

    def per_item(self, mapped: torch.Tensor, target: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Each item's loss; their mean is the batch's loss (for MSE, as every row has the same width)."""
        if self.name == "mse":
            return ((mapped - target) ** 2).mean(dim=1)
        if self.name == "cosine":
            return 1.0 - F.cosine_similarity(mapped, target, dim=1)
        return max_margin_per_item(mapped, target, classes, self.margin)

    def extra_repr(self) -> str:
        return self.name + (f", margin={self.margin}" if self.margin is not None else "")


def build_loss(name: str, margin: float | None = None) -> MappingLoss:
    """The ``_target_`` of ``conf/loss/*.yaml``; the margin's default lives in ``max_margin.yaml``."""
    return MappingLoss(name, margin)
