"""p-values that stay exact below float range: kept as log10 p from the test statistic.

A rank-sum test over IAPR TC-12's 1,962 items reaches p ~ 1e-356, which a float64 holds as 0.0:
printed, a "p = 0.0" claims certainty no test gives. Each test here returns ``log10 p`` computed
from its normal statistic in log space (``norm.logsf``), exact far past 1e-308; a p-value is shown
as a number down to ``P_FLOOR`` and as the bound ``p < 1e-300`` below it.

Example:
    >>> t = ranksum_test([5.0, 6.0, 7.0, 8.0] * 500, [1.0, 2.0, 3.0, 4.0] * 500)
    >>> round(t.log10_p), p_or_none(t.log10_p), format_p(t.log10_p)
    (-653, None, 'p < 1e-300')
    >>> format_p(ranksum_test([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]).log10_p)
    'p = 0.513'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

P_FLOOR = 1e-300
_LOG10_FLOOR = math.log10(P_FLOOR)


@dataclass(frozen=True)
class RankTest:
    statistic: float  # the normal statistic z (the rank-sum's; the signed-rank's approximation)
    log10_p: float  # two-sided, exact in log space

    @property
    def p(self) -> float:
        """p as a float (0.0 where it underflows: compare, never print)."""
        return 10.0**self.log10_p


def _two_sided_log10(z: float) -> float:
    return (math.log(2.0) + float(stats.norm.logsf(abs(z)))) / math.log(10.0)


def ranksum_test(x, y) -> RankTest:
    """Two-sided Wilcoxon rank-sum (scipy's ``ranksums``: the normal approximation)."""
    z = float(stats.ranksums(x, y).statistic)
    return RankTest(z, min(0.0, _two_sided_log10(z)))


def signed_rank_test(x, y) -> RankTest:
    """Two-sided Wilcoxon signed-rank of paired values (scipy's ``wilcoxon``): exact p for small
    samples as scipy gives it, the normal approximation's z in log space for large ones."""
    x, y = np.asarray(x), np.asarray(y)
    if np.all(x == y):
        return RankTest(0.0, 0.0)
    if len(x) <= 50:
        result = stats.wilcoxon(x, y)
        return RankTest(float("nan"), math.log10(max(float(result.pvalue), np.finfo(float).tiny)))
    z = float(stats.wilcoxon(x, y, method="approx").zstatistic)
    return RankTest(z, min(0.0, _two_sided_log10(z)))


def bonferroni_log10(log10_p: float, tests: int) -> float:
    """log10 of min(1, p * tests)."""
    return min(0.0, log10_p + math.log10(max(1, tests)))


def p_or_none(log10_p: float | None) -> float | None:
    """p as a JSON number where it is at least ``P_FLOOR``; None below (its log10 says how far)."""
    if log10_p is None or not math.isfinite(log10_p):
        return None
    return 10.0**log10_p if log10_p >= _LOG10_FLOOR else None


def format_p(log10_p: float) -> str:
    return f"p = {10.0**log10_p:.3g}" if log10_p >= _LOG10_FLOOR else f"p < {P_FLOOR:g}"
