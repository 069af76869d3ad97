"""Undefined is undefined: a set with no structure (one repeated row, one direction) gives no
number for any measure, decided from the data relative to its storage's rounding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bridgeeval.metrics import MEASURES, cross_modal_report, flatness, measure
from bridgeeval.metrics.flatness import ROUNDING_UNITS, relative_spread, spread_exceeds
from bridgeeval.metrics.measures import undefined_reason
from bridgeeval.metrics.representation import paired

N, D = 40, 12
OPTS = {"k": 5, "cca_dim": 4}


def _flat_sets(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    row = torch.randn(1, D, generator=g, dtype=torch.float64)
    eps = torch.finfo(dtype).eps
    wobble = torch.randn(N, D, generator=g, dtype=torch.float64) * (2 * eps) * row.abs().max()
    return {
        "repeated row": row.repeat(N, 1).to(dtype),
        "constant": torch.full((N, D), 3.0, dtype=dtype),
        "near-constant": (row + wobble).to(dtype),  # two units of rounding: noise, not structure
    }


def _random(dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    return torch.randn(N, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["repeated row", "constant", "near-constant"])
@pytest.mark.parametrize("name", list(MEASURES))
def test_every_measure_is_undefined_on_a_flat_set(name, kind, dtype):
    flat, other = _flat_sets(dtype)[kind], _random(dtype)
    for a, b in ((flat, other), (other, flat), (flat, flat)):
        value = measure(name, a, b, **OPTS)
        ra, rb = paired(a, b)
        if not MEASURES[name].reads:  # a one-set statistic or an uncentred distance: a flat set has one
            assert math.isfinite(value) and undefined_reason(MEASURES[name], ra, rb) is None, (name, value)
            continue
        assert math.isnan(value), f"{name} on a {kind} {dtype} set gave {value}"
        assert "to rounding" in undefined_reason(MEASURES[name], ra, rb)


@pytest.mark.parametrize("name", list(MEASURES))
def test_a_set_with_real_but_small_spread_keeps_its_value(name):
    """1e-3 relative spread (far above float32's rounding) and 1e-30 * X are structure: defined."""
    x, y = _random(torch.float32), _random(torch.float32, seed=2)
    barely = (torch.ones(1, D) + 1e-3 * x).to(torch.float32)
    assert math.isfinite(measure(name, barely, y, **OPTS))
    tiny = measure(name, 1e-30 * x.double(), y, **OPTS)
    if name == "svcca" or "isotropic_scaling" not in MEASURES[name].invariances:
        # platonic-rep's 1e-8 beside each std is in data units: it dwarfs 1e-30's stds; the others
        # are in the sets' units
        assert math.isfinite(tiny)
    else:
        assert tiny == pytest.approx(measure(name, x.double(), y, **OPTS), abs=1e-9)


def test_the_threshold_is_relative_to_the_storage_rounding():
    row = torch.randn(1, D, dtype=torch.float64)
    noise = torch.randn(N, D, dtype=torch.float64)
    for dtype in (torch.float32, torch.float64):
        eps = torch.finfo(dtype).eps
        assert relative_spread((row + 4 * eps * noise).to(dtype)) <= ROUNDING_UNITS * eps
        assert relative_spread((row + 1e3 * eps * noise).to(dtype)) > ROUNDING_UNITS * eps
    # The same data in float64 is structure where float32 storage could not tell it from rounding.
    middle = row + 1e-9 * noise
    assert math.isfinite(measure("cka", middle, _random(torch.float64)))


def _spread_cases():
    """Sets on both sides of the threshold, and those the two-row bound cannot settle."""
    gen = torch.Generator().manual_seed(11)
    row = torch.randn(1, D, dtype=torch.float64, generator=gen)
    noise = torch.randn(N, D, dtype=torch.float64, generator=gen)
    for dtype in (torch.float32, torch.float64):
        eps = torch.finfo(dtype).eps
        for scale in (0.0, 1.0, 4.0, 16.0, 24.0, 32.0, 48.0, 64.0, 1e3, 1e6):
            yield (row + scale * eps * noise).to(dtype)
    spread_out = torch.randn(N, D, dtype=torch.float64, generator=gen)
    alike = spread_out.clone()
    alike[[N // 2, N - 1]] = alike[0].clone()  # the rows the bound reads are identical, the others not
    yield alike
    zero_first = spread_out.clone()
    zero_first[0] = 0.0
    yield zero_first
    for exponent in (-200, 200):  # squares beyond float64's range
        yield spread_out * 10.0**exponent
    yield torch.arange(1.0, N + 1, dtype=torch.float64).unsqueeze(1) * row  # one direction
    yield row  # a single row


@pytest.mark.parametrize("by_direction", [False, True])
def test_the_two_row_shortcut_decides_as_the_full_spread_does(by_direction):
    for x in _spread_cases():
        threshold = ROUNDING_UNITS * torch.finfo(x.dtype).eps
        assert spread_exceeds(x, threshold, by_direction) == (relative_spread(x, by_direction) > threshold)


def test_ordinary_data_is_settled_without_the_full_spread(monkeypatch):
    """The hook asks it of f(X) every epoch: for data with structure two rows settle it."""
    def full_pass(*args, **kwargs):
        raise AssertionError("relative_spread was computed")

    monkeypatch.setattr(flatness, "relative_spread", full_pass)
    x = _random(torch.float32)
    assert flatness.flat_reason(x, "x") is None
    assert flatness.flat_reason(x, "x", by_direction=True) is None


def test_the_input_is_never_modified():
    x = _random(torch.float64)
    before = x.clone()
    relative_spread(x), relative_spread(x, by_direction=True)
    assert torch.equal(x, before)


def test_one_direction_is_flat_under_cosine_only():
    """Rows c_i * v: every cosine tie, but a line of distinct points under Euclidean distance."""
    v = torch.randn(1, D, dtype=torch.float64)
    line = torch.arange(1.0, N + 1, dtype=torch.float64).unsqueeze(1) * v
    y = _random(torch.float64)
    assert math.isnan(measure("mnno", line, y, k=5, metric="cosine"))
    assert math.isnan(measure("rsa", line, y, metric="cosine"))
    assert math.isfinite(measure("mnno", line, y, k=5, metric="euclidean"))
    assert math.isfinite(measure("cka", line, y))  # a rank-one centred set still has structure


def test_the_report_marks_what_a_collapsed_map_leaves_undefined():
    x, y = _random(torch.float32), _random(torch.float32, seed=3)
    collapsed = _flat_sets(torch.float32)["repeated row"]
    reasons: dict[str, str] = {}
    report = cross_modal_report(x, y, collapsed, k=5, reasons=reasons)
    assert sorted(reasons) == ["hubness", "mnno_input_mapped", "mnno_target_mapped"]
    assert all(math.isnan(report[key]) for key in reasons)
    assert all(math.isfinite(report[key]) for key in ("mnno_input_target", "mse", "r2", "recall_at_k"))


def test_score_says_null_and_why(tmp_path, capsys):
    from bridgeeval.cli import main

    np.save(tmp_path / "x.npy", np.tile(np.random.default_rng(0).standard_normal((1, D)), (N, 1)))
    np.save(tmp_path / "y.npy", np.random.default_rng(1).standard_normal((N, D)).astype(np.float32))
    assert main(["score", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--measures", "cka,cknna", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cka"] is None and out["cknna"] is None and sorted(out["undefined_keys"]) == ["cka", "cknna"]
    assert "x.npy) is the same vector (to rounding)" in out["undefined_reasons"]["cka"]
    assert main(["score", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]) == 0
    captured = capsys.readouterr()
    assert "undefined" in captured.out and "undefined: mnno_input_target: every row of input" in captured.err


def test_a_job_with_a_collapsed_fold_gives_no_verdict(caplog):
    """A fold whose map collapsed leaves the mean mNNO undefined: the job's closing line says so
    and where, rather than reading NaN > NaN as "closer to Y"."""
    import logging

    from bridgeeval.records import JobRecord
    from bridgeeval.training.run import say_what_was_found

    nan = float("nan")
    values = {"val/mnno_input_mapped": nan, "val/mnno_input_mapped_std": nan, "val/mnno_target_mapped": nan,
              "val/mnno_input_target": 0.165, "val/mnno_input_target_std": 0.006, "val/loss": 0.41}
    folds = [{"split": "fold0", "val/mnno_input_mapped": 0.06}, {"split": "fold1", "val/mnno_input_mapped": None}]
    record = JobRecord(dataset="iaprtc", n_items=1962, direction="image2text", mapper="nn", depth=1, loss="mse",
                       seed=0, k=10, neighbor_metric="cosine", include_self=False, protocol="cv",
                       values=values, folds=folds)
    with caplog.at_level(logging.INFO, logger="bridgeeval.training.run"):
        say_what_was_found(record, Path("."))
    line = caplog.records[0].getMessage()
    assert "mNNO(X,f(X)) undefined, mNNO(Y,f(X)) undefined, mNNO(X,Y) 0.165 ± 0.006" in line
    assert "undefined on fold1" in line and "closer to" not in line

    values.update({"val/mnno_input_mapped": 0.3, "val/mnno_input_mapped_std": 0.01, "val/mnno_target_mapped": 0.2})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bridgeeval.training.run"):
        say_what_was_found(record, Path("."))
    assert "closer to X (the input)" in caplog.records[0].getMessage()
