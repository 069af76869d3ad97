"""The two mappings of the paper: ``lin`` (one affine layer) and ``nn`` (feed-forward, 1-5 hidden layers)."""

from __future__ import annotations

from torch import nn

from bridgeeval.errors import BridgeEvalError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
MAPPERS = ("lin", "nn")


def build_mapper(
    kind: str,
    in_dim: int,
    out_dim: int,
    hidden_units: int = 256,
    depth: int = 1,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Module:
    """``lin``: f(x) = W x + b. ``nn``: ``depth`` hidden layers of ``activation`` (dropout after each)."""
    if kind == "lin":
        if depth != 1:
            raise BridgeEvalError(f"mapper=lin has no hidden layers; depth={depth} would duplicate depth=1")
        return nn.Linear(in_dim, out_dim)
    if kind != "nn":
        raise BridgeEvalError(f"mapper: unknown {kind!r}; choose one of {', '.join(MAPPERS)}")
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
