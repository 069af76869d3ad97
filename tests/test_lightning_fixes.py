"""The short cut in Lightning's logging (training.lightning_fixes): a move to where a result
holder already is returns at once; every other move still takes Lightning's path."""

from __future__ import annotations

import pytest
import torch

from bridgeeval.training.lightning_fixes import skip_redundant_log_moves


def _holder():
    from pytorch_lightning.trainer.connectors.logger_connector.result import _Metadata, _ResultMetric, _Sync

    meta = _Metadata(fx="validation_step", name="val/x")
    meta.sync = _Sync()  # as self.log sets it: no reduction across processes
    holder = _ResultMetric(meta, is_tensor=True)
    holder.update(torch.tensor(2.5), batch_size=4)
    return holder


def test_a_move_to_the_holders_own_device_skips_the_walk_and_others_do_not(monkeypatch):
    from pytorch_lightning.trainer.connectors.logger_connector import result

    skip_redundant_log_moves()
    skip_redundant_log_moves()  # installed once: a second call wraps nothing again
    holder = _holder()

    def walked(*args, **kwargs):
        raise AssertionError("walked")

    monkeypatch.setattr(result, "apply_to_collection", walked)
    assert holder.to("cpu") is holder and holder.to(torch.device("cpu")) is holder
    for other in ((torch.float64,), ("meta",)):  # a dtype, another device: Lightning's own path
        with pytest.raises(AssertionError, match="walked"):
            holder.to(*other)
    with pytest.raises(AssertionError, match="walked"):
        holder.to("cpu", non_blocking=True)


def test_logged_values_are_unchanged_by_it():
    skip_redundant_log_moves()
    holder = _holder()
    holder.to("cpu")
    holder.update(torch.tensor(0.5), batch_size=4)
    assert float(holder.compute()) == pytest.approx(1.5)  # the mean over both batches
