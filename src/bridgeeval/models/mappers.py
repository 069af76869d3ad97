"""The paper's two mappings and the closed-form optimum, one class each: the config's
``_target_`` is the variant.

``conf/mapper/lin.yaml`` names :class:`LinearMap`, ``conf/mapper/nn.yaml`` names :class:`MLP`,
``conf/mapper/lstsq.yaml`` names :class:`LeastSquaresMap`; each
class checks its own arguments (one line naming the key) and carries the short ``name`` that tables,
records and study names use. Experiment 2 builds its untrained maps from the same classes.
"""

from __future__ import annotations

import torch
from torch import nn

from bridgeeval.errors import BridgeEvalError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class LinearMap(nn.Linear):
    """f(x) = W x + b (``mapper=lin``). It has no hidden layers: ``depth`` (the config's shared
    key) must be 1.

    Example:
        >>> LinearMap(4, 3)(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
        >>> LinearMap(4, 3, depth=3)
        Traceback (most recent call last):
        ...
        bridgeeval.errors.BridgeEvalError: mapper=lin has no hidden layers; depth=3 would duplicate depth=1
    """

    name = "lin"
    has_depth = False

    def __init__(self, in_dim: int, out_dim: int, depth: int = 1):
        self.check(depth=depth)
        super().__init__(_width("in_dim", in_dim), _width("out_dim", out_dim))

    @classmethod
    def check(cls, depth: int = 1) -> None:
        problem = depth_problem(cls, depth)
        if problem:
            raise BridgeEvalError(problem)


class MLP(nn.Sequential):
    """``depth`` hidden layers of ``hidden_units`` units and ``activation``, dropout after each,
    then a linear output layer (``mapper=nn``). The settings have no defaults here: they live in
    ``conf/mapper/nn.yaml``, the one place a reader looks.

    Example:
        >>> MLP(4, 3, depth=2, hidden_units=8, activation="tanh", dropout=0.0)
        MLP(
          (0): Linear(in_features=4, out_features=8, bias=True)
          (1): Tanh()
          (2): Linear(in_features=8, out_features=8, bias=True)
          (3): Tanh()
          (4): Linear(in_features=8, out_features=3, bias=True)
        )
    """

    name = "nn"
    has_depth = True

    def __init__(self, in_dim: int, out_dim: int, depth: int, hidden_units: int, activation: str, dropout: float):
        self.check(depth, hidden_units, activation, dropout)
        layers: list[nn.Module] = []
        width = _width("in_dim", in_dim)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden_units), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_units
        layers.append(nn.Linear(width, _width("out_dim", out_dim)))
        super().__init__(*layers)

    @classmethod
    def check(cls, depth: int = 1, hidden_units: int | None = None, activation: str | None = None,
              dropout: float | None = None) -> None:
        for key, value in (("hidden_units", hidden_units), ("activation", activation), ("dropout", dropout)):
            if value is None:
                raise BridgeEvalError(f"mapper.{key} is required for mapper={cls.name}")
        problem = depth_problem(cls, depth)
        if problem:
            raise BridgeEvalError(problem)
        _width("mapper.hidden_units", hidden_units)
        if activation not in ACTIVATIONS:
            raise BridgeEvalError(f"mapper.activation={activation!r}: unknown; choose one of {', '.join(ACTIVATIONS)}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise BridgeEvalError(f"mapper.dropout={dropout!r}: expected a number")
        if not 0.0 <= dropout < 1.0:
            raise BridgeEvalError(f"mapper.dropout={dropout!r}: must be in [0, 1)")


class LeastSquaresMap(nn.Linear):
    """The closed-form linear map (``mapper=lstsq``): the W and b that minimise
    ``||X W^T + b - Y||^2 + alpha ||W||^2`` over a split's training items (the bias is not
    penalised), solved in float64 in one step by :meth:`fit`, with no optimiser. ``alpha=0`` is
    plain least squares (the minimum-norm W where the centred X is rank-deficient). It is the
    optimum a trained ``lin`` map approaches, and the reference its results are read against.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [2.0]])
        >>> LeastSquaresMap(1, 1, alpha=0.0).fit(x, 3 * x + 1)(torch.tensor([[4.0]]))
        tensor([[13.]])
    """

    name = "lstsq"
    has_depth = False
    closed_form = True  # fitted by fit() on the training items, not by gradient steps

    def __init__(self, in_dim: int, out_dim: int, depth: int = 1, alpha: float | None = None):
        self.check(depth=depth, alpha=alpha)
        super().__init__(_width("in_dim", in_dim), _width("out_dim", out_dim))
        self.alpha = float(alpha)
        self.requires_grad_(False)

    @classmethod
    def check(cls, depth: int = 1, alpha: float | None = None) -> None:
        if alpha is None:
            raise BridgeEvalError(f"mapper.alpha is required for mapper={cls.name}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < float("inf"):
            raise BridgeEvalError(f"mapper.alpha={alpha!r}: must be a finite number, 0 or more")
        problem = depth_problem(cls, depth)
        if problem:
            raise BridgeEvalError(problem)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> LeastSquaresMap:
        """Sets W and b from training pairs ``x`` (n x in_dim) and ``y`` (n x out_dim); returns self."""
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or x.shape[1] != self.in_features \
                or y.shape[1] != self.out_features:
            raise BridgeEvalError(f"mapper=lstsq: fit takes n x {self.in_features} inputs and n x "
                                  f"{self.out_features} targets, got {tuple(x.shape)} and {tuple(y.shape)}")
        x, y = x.to(torch.float64), y.to(torch.float64)
        x_mean, y_mean = x.mean(0), y.mean(0)
        xc, yc = x - x_mean, y - y_mean
        if self.alpha == 0:
            w = torch.linalg.pinv(xc) @ yc  # via the SVD: exact on any device, minimum-norm if rank-deficient
        else:
            gram = xc.T @ xc + self.alpha * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
            w = torch.linalg.solve(gram, xc.T @ yc)
        self.weight.copy_(w.T)
        self.bias.copy_(y_mean - x_mean @ w)
        return self


MAPPERS: dict[str, type[nn.Module]] = {cls.name: cls for cls in (LinearMap, MLP, LeastSquaresMap)}
# Experiment 2's untrained maps (built in bridgeeval.untrained): a net, a linear map, and none (X itself).
UNTRAINED_MAPPINGS = ("nn", "lin", "none")


def depth_problem(mapper: type | str | None, depth: int) -> str | None:
    """Why ``depth`` does not fit the mapper (a class or its name), or None. The one statement of
    "a linear map has no hidden layers", read by the classes, the jobs (which skip such a
    combination in a multirun), the reports and ``reproduce``."""
    cls = MAPPERS.get(mapper) if isinstance(mapper, str) else mapper
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        return f"depth: expected a whole number of hidden layers, 1 or more, got {depth!r}"
    if cls is not None and not cls.has_depth and depth != 1:
        return f"mapper={cls.name} has no hidden layers; depth={depth} would duplicate depth=1"
    return None


def has_depth(mapper: str | None) -> bool:
    """Whether ``depth`` means anything for the mapper of this name (unknown names: yes)."""
    cls = MAPPERS.get(mapper) if mapper else None
    return cls is None or cls.has_depth


def _width(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BridgeEvalError(f"{key}={value!r}: expected a whole number of units")
    if value < 1:
        raise BridgeEvalError(f"{key}={value!r}: must be 1 or more")
    return value


@torch.no_grad()
def mapped_values(mapper: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """f(X) in eval mode (no dropout), on the mapper's device, returned on the CPU."""
    was_training = mapper.training
    mapper.eval()
    device = next(mapper.parameters()).device
    out = mapper(x.to(device)).detach().cpu()
    mapper.train(was_training)
    return out
