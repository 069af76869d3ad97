"""A checkpoint is data: loading one never runs what the file names (issue: `map` ran pickled code)."""

from __future__ import annotations

import math
import os
import pathlib

import pytest
import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.models.module import MappingModule, load_map


class _Payload:
    """Unpickled by a full pickle load, it creates ``marker``: the proof that code ran."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _map_spec(**extra):
    return {"_target_": "bridgeeval.models.mappers.LinearMap", "in_dim": 3, "out_dim": 2, **extra}


def _checkpoint(path, mapper_spec, state=None, **extra):
    state = state if state is not None else {"mapper.weight": torch.ones(2, 3), "mapper.bias": torch.zeros(2)}
    torch.save({"state_dict": state, "hyper_parameters": {"mapper": mapper_spec, **extra},
                "pytorch-lightning_version": "2.6.0"}, path)
    return path


def test_a_pickled_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"mapper": _map_spec()}, "x": _Payload(marker)}, ckpt)
    with pytest.raises(BridgeEvalError, match=r"evil.ckpt: refused: it holds more than tensors and plain values \(it names \w+.*nothing in it was run"):
        load_map(ckpt)
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # the payload is real: a full load runs it
    assert marker.exists()


@pytest.mark.parametrize("spec, named", [
    ({"_target_": "os.system", "command": "touch MARK"}, "'os.system'"),
    ({"_target_": "builtins.exec", "_args_": ["open('MARK', 'w')"]}, "'builtins.exec'"),
    (_map_spec(activation={"_target_": "os.system", "command": "touch MARK"}), "activation"),
    (_map_spec(_args_=["x"]), "_args_"),
    ({"_target_": ["os.system"], "in_dim": 3}, "['os.system']"),
])
def test_a_spec_naming_code_is_refused_before_anything_is_imported(tmp_path, monkeypatch, spec, named):
    monkeypatch.chdir(tmp_path)
    ckpt = _checkpoint(tmp_path / "spec.ckpt", spec)
    with pytest.raises(BridgeEvalError, match="spec.ckpt: refused") as err:
        load_map(ckpt)
    assert named in str(err.value) and not (tmp_path / "MARK").exists()


def test_lightnings_loader_reads_as_data_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = {"k": 2, "neighbour_metrics": ["cosine"], "include_self": False}
    good = _checkpoint(tmp_path / "good.ckpt", _map_spec(),
                       loss={"_target_": "bridgeeval.models.losses.MSELoss"}, **common)
    module = MappingModule.load_from_checkpoint(good)
    assert torch.equal(module.mapper.weight, torch.ones(2, 3))
    evil = _checkpoint(tmp_path / "evil.ckpt", _map_spec(),
                       loss={"_target_": "os.system", "command": "touch MARK"}, **common)
    with pytest.raises(BridgeEvalError, match="checkpoint: refused: the saved spec names 'os.system'"):
        MappingModule.load_from_checkpoint(evil)
    assert not (tmp_path / "MARK").exists()


def test_a_legacy_spec_and_bad_weights_are_one_line(tmp_path):
    legacy = {"kind": "lin", "in_dim": 3, "out_dim": 2}  # saved before configs had _target_
    mapper = load_map(_checkpoint(tmp_path / "old.ckpt", legacy))
    assert torch.equal(mapper.weight, torch.ones(2, 3)) and not mapper.training
    # Saved while the mapper and loss were built by string-dispatching functions: still loaded.
    builder = {"_target_": "bridgeeval.models.mappers.build_mapper", "kind": "nn", "in_dim": 3, "out_dim": 2,
               "depth": 1, "hidden_units": 4, "activation": "tanh", "dropout": 0.0}
    state = {"mapper.0.weight": torch.ones(4, 3), "mapper.0.bias": torch.zeros(4),
             "mapper.2.weight": torch.ones(2, 4), "mapper.2.bias": torch.zeros(2)}
    old = load_map(_checkpoint(tmp_path / "builder.ckpt", builder, state=state))
    assert torch.allclose(old(torch.ones(1, 3)), torch.full((1, 2), 4 * math.tanh(3.0)))
    old_lin = {"_target_": "bridgeeval.models.mappers.build_mapper", "kind": "lin", "in_dim": 3, "out_dim": 2,
               "depth": 1, "hidden_units": None, "activation": None, "dropout": None}
    assert torch.equal(load_map(_checkpoint(tmp_path / "old_lin.ckpt", old_lin)).weight, torch.ones(2, 3))
    common = {"k": 2, "neighbour_metrics": ["cosine"], "include_self": False}
    module = MappingModule.load_from_checkpoint(_checkpoint(
        tmp_path / "old_loss.ckpt", old_lin, loss={"_target_": "bridgeeval.models.losses.build_loss",
                                                    "name": "max_margin", "margin": 0.5}, **common))
    assert module.loss.name == "max_margin" and module.loss.margin == 0.5
    with pytest.raises(BridgeEvalError, match="wrong.ckpt: the saved weights do not fit"):
        load_map(_checkpoint(tmp_path / "wrong.ckpt", _map_spec(), state={"mapper.weight": torch.ones(5, 5)}))
    with pytest.raises(BridgeEvalError, match="extra.ckpt: the saved spec of .*LinearMap does not fit it"):
        load_map(_checkpoint(tmp_path / "extra.ckpt", _map_spec(colour="red")))
    assert "MARK" not in os.listdir(tmp_path)


def test_a_spec_far_larger_than_its_weights_allocates_nothing(tmp_path):
    """A spec of 10^9 x 10^9 (4 EB of float32) beside 6 saved values: refused from the shapes,
    never built (the mapper is made on the meta device and takes the file's own tensors)."""
    import resource

    huge = _checkpoint(tmp_path / "huge.ckpt", _map_spec(in_dim=10**9, out_dim=10**9))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BridgeEvalError, match=r"huge.ckpt: the saved weights do not fit the saved mapper \(size mismatch"):
        load_map(huge)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no large allocation
    with pytest.raises(BridgeEvalError, match=r"neg.ckpt: the saved spec of .* does not fit it \(in_dim=-3: must be 1 or more\)"):
        load_map(_checkpoint(tmp_path / "neg.ckpt", _map_spec(in_dim=-3)))
    mapper = load_map(_checkpoint(tmp_path / "ok.ckpt", _map_spec()))
    assert all(p.device.type == "cpu" for p in mapper.parameters())  # real tensors, not meta
