"""p-values below float range: exact in log space, never printed as 0."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from scipy.stats import ranksums, wilcoxon

from bridgeeval.jsonout import dumps
from bridgeeval.reports.table1 import Comparison, _test
from bridgeeval.significance import format_p, p_or_none, ranksum_test, signed_rank_test


def _reference_log10(z: float) -> float:
    """log10 of 2 Q(|z|) at 50 digits (mpmath's erfc does not underflow)."""
    mpmath.mp.dps = 50
    return float(mpmath.log10(mpmath.erfc(abs(mpmath.mpf(z)) / mpmath.sqrt(2))))


def _separated(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-item overlaps as far apart as IAPR TC-12's (1,962 items: p ~ 1e-356)."""
    rng = np.random.default_rng(seed)
    return rng.integers(3, 10, n) / 10, rng.integers(0, 4, n) / 10


def test_the_rank_sum_p_value_is_exact_far_below_float_range():
    x, y = _separated(1962)
    result = ranksum_test(x, y)
    assert float(ranksums(x, y).pvalue) == 0.0  # what was printed before
    assert result.log10_p < -308 and result.log10_p == pytest.approx(_reference_log10(result.statistic), rel=1e-10)
    assert p_or_none(result.log10_p) is None and format_p(result.log10_p) == "p < 1e-300"


def test_ordinary_p_values_equal_scipys():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.1, 1, 300), rng.normal(0, 1, 300)
    assert ranksum_test(x, y).p == pytest.approx(ranksums(x, y).pvalue, rel=1e-9)
    assert signed_rank_test(x, y).p == pytest.approx(wilcoxon(x, y).pvalue, rel=1e-9)
    assert signed_rank_test(x[:20], y[:20]).p == pytest.approx(wilcoxon(x[:20], y[:20]).pvalue, rel=1e-9)
    assert format_p(ranksum_test(x, y).log10_p) == f"p = {ranksums(x, y).pvalue:.3g}"


def test_the_reports_json_keeps_log10_p_and_never_says_zero():
    x, y = _separated(1962)
    cell = Comparison(row={}, visual="v", x=[0.5, 0.6], y=[0.1, 0.2], x_items=[x], y_items=[y])
    _test([cell], alpha=0.001)
    record = json.loads(dumps(cell._item_p_values()))
    assert record["p_items_ranksum"] is None and record["p_items_signed_rank"] is None
    assert record["p_items_ranksum_log10"] == pytest.approx(_reference_log10(record["z_items_ranksum"]), rel=1e-10)
    assert record["p_items_bonferroni_log10"] == pytest.approx(record["p_items_ranksum_log10"])  # one test
    assert record["p_items_signed_rank_log10"] < -300 and cell.significant
    assert not any(v == 0.0 for k, v in record.items() if k.startswith("p_") and not k.endswith("_log10"))
    assert math.isfinite(record["p_items_signed_rank_log10"])
