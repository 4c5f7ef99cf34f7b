"""Tests for lungtrial.stats._nonparametric: Mann-Whitney and Hodges-Lehmann, by hand, as scipy and as R's
wilcox.test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from lungtrial import stats
from lungtrial.stats import hodges_lehmann, mann_whitney

from r_golden import P_ABS, REL, _close, _read, _two_sample_sets


def test_hodges_lehmann_by_hand():
    x, y = [5, 7, 9, 11], [1, 2, 4, 8]
    # 16 differences sorted: -3 -1 1 1 3 3 3 4 5 5 6 7 7 8 9 10; median (4 + 5) / 2
    # U null distribution for m = n = 4 (70 arrangements): 1 1 2 3 5 5 7 7 8 7 7 5 5 3 2 1 1
    est, lo, hi, level = stats.hodges_lehmann(x, y, 0.95)
    # P(U <= 0) = 1/70 < 0.025 <= P(U <= 1) = 2/70: k = 1, the range, coverage 1 - 2/70
    assert (est, lo, hi) == (4.5, -3.0, 10.0)
    assert level == pytest.approx(1 - 2 / 70)
    # 90 %: P(U <= 1) = 2/70 < 0.05 <= P(U <= 2) = 4/70: k = 2, coverage 1 - 4/70
    est, lo, hi, level = stats.hodges_lehmann(x, y, 0.90)
    assert (lo, hi) == (-1.0, 9.0)
    assert level == pytest.approx(1 - 4 / 70)


def test_mwu_null_distribution_matches_scipy_exact():
    counts = stats.mwu_null_counts(4, 4)
    assert counts.tolist() == [1, 1, 2, 3, 5, 5, 7, 7, 8, 7, 7, 5, 5, 3, 2, 1, 1]
    counts = stats.mwu_null_counts(6, 9)
    assert counts.sum() == math.comb(15, 6)
    cdf = np.cumsum(counts) / counts.sum()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=6), rng.normal(1.0, size=9)
    res = sps.mannwhitneyu(x, y, method="exact")
    u, p = int(res.statistic), res.pvalue
    assert p == pytest.approx(min(1.0, 2 * min(cdf[u], 1 - (cdf[u - 1] if u else 0.0))))


def test_hodges_lehmann_ci_inverts_the_exact_mann_whitney_test():
    # the interval is the set of shifts d that the two-sided exact test of (x - d) vs y does not reject
    rng = np.random.default_rng(11)
    x, y = rng.normal(1.0, 1.0, 7), rng.normal(0.0, 1.0, 8)
    est, lo, hi, level = stats.hodges_lehmann(x, y, 0.95)
    assert level >= 0.95
    eps = 1e-9

    def p(d):
        return sps.mannwhitneyu(x - d, y, method="exact").pvalue

    assert p(lo - eps) <= 0.05 < p(lo + eps) and p(hi + eps) <= 0.05 < p(hi - eps)


def test_hodges_lehmann_large_sample_covers_shift():
    rng = np.random.default_rng(7)
    x = rng.normal(2.0, 1.0, 80)
    y = rng.normal(0.0, 1.0, 90)
    est, lo, hi, level = stats.hodges_lehmann(x, y)
    assert lo < 2.0 < hi and lo < est < hi
    assert level == pytest.approx(0.95, abs=0.01)


@pytest.mark.parametrize("row", _read("golden_wilcox.csv").to_dict("records"), ids=lambda r: r["set"])
def test_mann_whitney_and_hodges_lehmann_as_wilcox_test(row):
    x, y = _two_sample_sets()[row["set"]]
    u, p, method = mann_whitney(x, y)
    assert u == row["statistic"]
    assert p == pytest.approx(row["p_value"], abs=P_ABS)
    assert (method == "exact") == ("exact" in row["method"])
    est, lo, hi, _ = hodges_lehmann(x, y)
    for ours, theirs in ((est, row["estimate"]), (lo, row["ci_low"]), (hi, row["ci_high"])):
        assert _close(ours, theirs, REL), (ours, theirs)
