"""A narrow fix of Lightning's logging hot path, installed by :class:`~bridgeeval.training.trainer.Trainer`.

Each ``self.log`` call moves its result holder to the value's device (``_ResultMetric.to``),
which walks the holder's whole ``__dict__`` even when it is already there: the validation hook
logs about 20 keys per epoch, and on the built-in set that walk was about half of the hook's time
(Lightning-AI/pytorch-lightning#20388; a fix along the same lines is open upstream as #21769).
A move to the device the holder's tensors are already on now returns at once; every other call
(a dtype, another device, a holder of a torchmetrics Metric) takes Lightning's own path.
"""

from __future__ import annotations

import torch

_MARK = "_bridgeeval_skips_redundant_moves"


def skip_redundant_log_moves() -> None:
    """Install the short cut (once per process; a Lightning without ``_ResultMetric.to`` is left alone)."""
    try:
        from pytorch_lightning.trainer.connectors.logger_connector.result import _ResultMetric
    except ImportError:
        return
    original = getattr(_ResultMetric, "to", None)
    if original is None or getattr(original, _MARK, False):
        return

    def to(self, *args, **kwargs):
        if not kwargs and len(args) == 1 and isinstance(args[0], (str, torch.device)) and _already_on(self, args[0]):
            return self
        return original(self, *args, **kwargs)

    setattr(to, _MARK, True)
    to.__doc__ = original.__doc__
    _ResultMetric.to = to


def _already_on(holder, device) -> bool:
    """Whether every state tensor of a tensor-valued result holder is on ``device``."""
    if not getattr(holder, "is_tensor", False):
        return False
    target = torch.device(device)
    if target.type != "cpu" and target.index is None:
        return False  # "cuda" names no index: let Lightning resolve it
    value, count = getattr(holder, "value", None), getattr(holder, "cumulated_batch_size", None)
    # the batch-size count exists only for a mean
    return isinstance(value, torch.Tensor) and value.device == target and (count is None or count.device == target)
