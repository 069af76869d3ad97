"""The two mappings of the paper: ``lin`` (one affine layer) and ``nn`` (feed-forward, 1-5 hidden layers)."""

from __future__ import annotations

import torch
from torch import nn

from bridgeeval.errors import BridgeEvalError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
MAPPERS = ("lin", "nn")
# Experiment 2's untrained maps (built in bridgeeval.untrained): a net, a linear map, and none (X itself).
UNTRAINED_MAPPINGS = ("nn", "lin", "none")


def build_mapper(
    kind: str,
    in_dim: int,
    out_dim: int,
    depth: int = 1,
    hidden_units: int | None = None,
    activation: str | None = None,
    dropout: float | None = None,
) -> nn.Module:
    """``lin``: f(x) = W x + b. ``nn``: ``depth`` hidden layers of ``hidden_units`` units and
    ``activation`` (dropout after each). The net's settings have no defaults here: they live in
    ``conf/mapper/nn.yaml``, the one place a reader looks."""
    if kind == "lin":
        if depth != 1:
            raise BridgeEvalError(f"mapper=lin has no hidden layers; depth={depth} would duplicate depth=1")
        return nn.Linear(in_dim, out_dim)
    if kind != "nn":
        raise BridgeEvalError(f"mapper: unknown {kind!r}; choose one of {', '.join(MAPPERS)}")
    for key, value in (("hidden_units", hidden_units), ("activation", activation), ("dropout", dropout)):
        if value is None:
            raise BridgeEvalError(f"mapper.{key} is required for mapper=nn")
    if activation not in ACTIVATIONS:
        raise BridgeEvalError(f"mapper.activation: unknown {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if depth < 1:
        raise BridgeEvalError(f"depth: need at least one hidden layer for mapper=nn, got {depth}")
    if not 0.0 <= dropout < 1.0:
        raise BridgeEvalError(f"mapper.dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden_units), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden_units
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


@torch.no_grad()
def mapped_values(mapper: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """f(X) in eval mode (no dropout), on the mapper's device, returned on the CPU."""
    was_training = mapper.training
    mapper.eval()
    device = next(mapper.parameters()).device
    out = mapper(x.to(device)).detach().cpu()
    mapper.train(was_training)
    return out
