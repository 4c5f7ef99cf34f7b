"""Two-sample rank methods as R's ``wilcox.test`` computes them: Mann-Whitney U and the Hodges-Lehmann shift.

R's defaults (``exact = NULL, correct = TRUE``) decide the method: the exact null distribution of U when both
samples have fewer than 50 values and the pooled values have no ties; otherwise the normal approximation with
the tie-corrected variance and a continuity correction of 1/2. The Hodges-Lehmann interval follows the same
choice: in the exact case it runs between order statistics of the pairwise differences (Moses); otherwise its
limits, and the estimate itself, are the roots of the normal-approximation statistic as a function of the shift,
found as R finds them (Brent's zeroin with R's ``uniroot`` tolerance), so that they agree with R to the last
digit rather than only to the root-finder's tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

EXACT_MAX = 50
"""R's ``wilcox.test``: the exact distribution is used when both samples have fewer values than this (and no ties)."""

TOL_ROOT = 1e-4
"""R's ``wilcox.test(tol.root = 1e-4)``: tolerance of the root search for the approximate interval and estimate."""

_DBL_EPSILON = float(np.finfo(float).eps)


def _finite(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]


def has_ties(x: Sequence[float], y: Sequence[float]) -> bool:
    """True when the pooled finite values of ``x`` and ``y`` hold a repeated value (R's ``TIES``)."""
    pooled = np.concatenate([_finite(x), _finite(y)])
    return bool(np.unique(pooled).size != pooled.size)


def uses_exact(x: Sequence[float], y: Sequence[float], exact: bool | None = None) -> bool:
    """Whether R's ``wilcox.test(x, y, exact=exact)`` uses the exact distribution: never with ties; with
    ``exact=None`` (R's default) only when both samples have fewer than :data:`EXACT_MAX` values."""
    m, n = _finite(x).size, _finite(y).size
    if exact is None:
        exact = m < EXACT_MAX and n < EXACT_MAX
    return bool(exact and not has_ties(x, y))


def mann_whitney(
    x: Sequence[float], y: Sequence[float], exact: bool | None = None, correct: bool = True
) -> tuple[float, float, str]:
    """Two-sided Mann-Whitney U test (Wilcoxon rank-sum) of ``x`` against ``y`` with R's defaults.

    Parameters
    ----------
    x, y : sequence of float
        The two samples, any unit; non-finite values are dropped.
    exact : bool or None
        ``None`` (R's default): exact when both samples have fewer than 50 values and there are no ties.
        ``True``: exact unless there are ties. ``False``: normal approximation.
    correct : bool
        Continuity correction of the normal approximation (R's default ``True``).

    Returns
    -------
    u : float
        U of ``x`` (the number of pairs with ``x_i > y_j``, ties counting one half; R's ``W``).
    p_value : float
        Two-sided p value; NaN when a sample is empty.
    method : str
        ``"exact"`` or ``"normal approximation (continuity and tie corrected)"`` (or without continuity
        correction when ``correct`` is false).
    """
    xv, yv = _finite(x), _finite(y)
    if xv.size == 0 or yv.size == 0:
        return (math.nan, math.nan, "")
    if uses_exact(xv, yv, exact):
        res = sps.mannwhitneyu(xv, yv, alternative="two-sided", method="exact")
        return (float(res.statistic), float(res.pvalue), "exact")
    res = sps.mannwhitneyu(xv, yv, alternative="two-sided", method="asymptotic", use_continuity=correct)
    corr = "continuity and tie corrected" if correct else "tie corrected"
    return (float(res.statistic), float(res.pvalue), f"normal approximation ({corr})")


def mwu_null_counts(m: int, n: int) -> np.ndarray:
    """Number of arrangements giving each Mann-Whitney U = 0..m*n under H0 (no ties), as floats.

    Recurrence on the largest observation: f(i, j)[u] = f(i-1, j)[u-j] + f(i, j-1)[u]; only additions of
    non-negative numbers, so the tails stay exact in floating point.
    """
    prev = [np.ones(1) for _ in range(n + 1)]  # row i = 0: U is 0 whatever j
    for i in range(1, m + 1):
        cur = [np.ones(1)]
        for j in range(1, n + 1):
            f = np.zeros(i * j + 1)
            a = prev[j]
            f[j : j + a.size] += a
            b = cur[j - 1]
            f[: b.size] += b
            cur.append(f)
        prev = cur
    return prev[n]


def zeroin(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    f_lower: float | None = None,
    f_upper: float | None = None,
    tol: float = _DBL_EPSILON**0.25,
    maxiter: int = 1000,
) -> float:
    """A root of ``f`` in ``[lower, upper]`` by Brent's method, step for step as R's ``uniroot`` (zeroin).

    ``f(lower)`` and ``f(upper)`` must not have the same sign. Used where the function is a step function
    (a rank statistic as a function of a shift): which point of the final step is returned depends on the
    root finder's path, and this one takes R's path, so the result is R's to the last digit.
    """
    a, b = float(lower), float(upper)
    fa = f(a) if f_lower is None else float(f_lower)
    fb = f(b) if f_upper is None else float(f_upper)
    if fa * fb > 0:
        raise ValueError("f() values at end points not of opposite sign")
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):  # b is the best approximation so far
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _DBL_EPSILON * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):  # interpolation may be tried
            cb = c - b
            if a == c:  # linear interpolation
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def _w_normal(x: np.ndarray, y: np.ndarray, d: float, correct: bool) -> float:
    """R's standardised rank-sum statistic of ``x - d`` against ``y`` (tie-corrected variance, optional
    continuity correction), the function whose roots are the approximate interval and estimate."""
    m, n = float(x.size), float(y.size)
    ranks = sps.rankdata(np.concatenate([x - d, y]))
    _, ties = np.unique(ranks, return_counts=True)
    ties = ties.astype(float)
    dz = float(np.sum(ranks[: x.size])) - m * (m + 1) / 2 - m * n / 2
    correction = math.copysign(0.5, dz) if (correct and dz != 0) else 0.0
    sigma = math.sqrt((m * n / 12) * ((m + n + 1) - float(np.sum(ties**3 - ties)) / ((m + n) * (m + n - 1))))
    if sigma == 0:
        return math.nan
    return (dz - correction) / sigma


def hodges_lehmann(
    x: Sequence[float],
    y: Sequence[float],
    confidence: float = 0.95,
    exact_max: int = EXACT_MAX,
    correct: bool = True,
) -> tuple[float, float, float, float]:
    """Hodges-Lehmann shift estimate ``x - y`` and its confidence interval, as R's ``wilcox.test(conf.int=TRUE)``.

    Exact case (both samples smaller than ``exact_max`` and no ties in the pooled values): the estimate is the
    median of all ``m * n`` pairwise differences ``x_i - y_j``; the interval runs from the k-th smallest to the
    k-th largest difference, ``k`` = R's ``qwilcox((1 - confidence) / 2, m, n)`` and at least 1 (Moses).
    Otherwise (R's normal approximation): the interval's limits are the shifts ``d`` where the continuity-
    corrected, tie-corrected standardised rank-sum statistic of ``x - d`` against ``y`` equals the normal
    quantiles, and the estimate is where the uncorrected statistic is zero; each is found by
    :func:`zeroin` with R's tolerance :data:`TOL_ROOT`, as R does.

    Parameters
    ----------
    x, y : sequence of float
        The two samples (e.g. treatment, reference), in any unit; non-finite values are dropped.
    confidence : float
        Requested two-sided confidence level.
    exact_max : int
        Sample size from which the normal approximation is used (R: 50).
    correct : bool
        Continuity correction of the approximate interval (R's default ``True``).

    Returns
    -------
    estimate, low, high : float
        In the unit of ``x`` and ``y``; NaN when a sample is empty; when every value is the same, the estimate
        is 0 and the limits NaN (R stops with an error there).
    achieved : float
        The interval's actual coverage under H0 in the exact case (at least ``confidence`` unless the samples
        are so small that even the widest interval, the range of the differences, covers less); ``confidence``
        in the approximate case.
    """
    xv, yv = _finite(x), _finite(y)
    m, n = xv.size, yv.size
    if m == 0 or n == 0:
        return (math.nan, math.nan, math.nan, math.nan)
    half = (1.0 - confidence) / 2.0
    if m < exact_max and n < exact_max and not has_ties(xv, yv):
        diffs = np.sort(np.subtract.outer(xv, yv).ravel())
        mn = m * n
        counts = mwu_null_counts(m, n)
        cdf = np.cumsum(counts) / counts.sum()
        # smallest q with P(U <= q) >= half; R's qwilcox subtracts 10 eps from the probability first
        q = int(np.searchsorted(cdf, half - 10 * _DBL_EPSILON, side="left"))
        k = max(q, 1)
        achieved = 1.0 - 2.0 * float(cdf[k - 1])
        return (float(np.median(diffs)), float(diffs[k - 1]), float(diffs[mn - k]), achieved)
    if np.unique(np.concatenate([xv, yv])).size == 1:  # every value the same: shift 0, no interval (R stops)
        return (0.0, math.nan, math.nan, math.nan)
    lo_d, hi_d = float(xv.min() - yv.max()), float(xv.max() - yv.min())
    w_lo, w_hi = _w_normal(xv, yv, lo_d, correct), _w_normal(xv, yv, hi_d, correct)
    if not (np.isfinite(w_lo) and np.isfinite(w_hi)):
        return (math.nan, math.nan, math.nan, math.nan)

    def root(zq: float) -> float:
        f_lower, f_upper = w_lo - zq, w_hi - zq
        if f_lower <= 0:
            return lo_d
        if f_upper >= 0:
            return hi_d
        return zeroin(lambda d: _w_normal(xv, yv, d, correct) - zq, lo_d, hi_d, f_lower, f_upper, tol=TOL_ROOT)

    low = root(float(sps.norm.isf(half)))
    high = root(float(sps.norm.ppf(half)))
    estimate = zeroin(lambda d: _w_normal(xv, yv, d, False), lo_d, hi_d, tol=TOL_ROOT)
    return (estimate, low, high, confidence)
