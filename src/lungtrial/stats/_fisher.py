"""The odds ratio of a 2 x 2 table as R's ``fisher.test`` reports it: conditional maximum likelihood, exact interval.

Under the conditional (non-central hypergeometric) distribution of the first cell given the margins, the
estimate is the odds ratio whose conditional mean equals the observed cell, and the two-sided interval's limits
are the odds ratios at which each one-sided conditional tail probability equals ``(1 - confidence) / 2``.
``scipy.stats.contingency.odds_ratio(kind="conditional")`` solves the same equations to full precision, but R
solves them with ``uniroot``'s default tolerance (about 1e-4, on a 0-1 scale that is the inverse odds ratio above 1),
so its printed limits can differ from the exact roots in the third significant figure (an upper limit of 622
where the root is 626). The equations are solved here as R solves them (same brackets, same root finder,
:func:`lungtrial.stats._nonparametric.zeroin`), so that the values agree with R's to many digits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from lungtrial.stats._nonparametric import zeroin

_EPS = float(np.finfo(float).eps)


def fisher_odds_ratio(table: Sequence[Sequence[int]], confidence: float = 0.95) -> tuple[float, float, float]:
    """Conditional maximum-likelihood odds ratio of a 2 x 2 table and its exact two-sided interval (R ``fisher.test``).

    Parameters
    ----------
    table : 2 x 2 counts
        ``[[a, b], [c, d]]``: rows the arms (treatment first), columns event yes / no. The odds ratio is
        ``(a / b) / (c / d)`` in its conditional form.
    confidence : float
        Two-sided level of the interval.

    Returns
    -------
    odds_ratio, low, high : float
        0 or ``inf`` where the first cell is at the lowest or highest value its margins allow (a zero cell);
        the interval's limit is then 0 or ``inf`` too. NaN when the margins leave the cell no freedom (e.g.
        no events in either arm).
    """
    t = np.asarray(table, dtype=int)
    x = int(t[0, 0])
    m = int(t[:, 0].sum())  # events
    n = int(t[:, 1].sum())  # non-events
    k = int(t[0, :].sum())  # first row (treatment arm) size
    lo, hi = max(0, k - n), min(k, m)
    if lo == hi:
        return (math.nan, math.nan, math.nan)
    support = np.arange(lo, hi + 1)
    logdc = sps.hypergeom(m + n, m, k).logpmf(support)

    def dnhyper(ncp: float) -> np.ndarray:
        d = logdc + math.log(ncp) * support
        d = np.exp(d - d.max())
        return d / d.sum()

    def mnhyper(ncp: float) -> float:
        if ncp == 0:
            return float(lo)
        if ncp == math.inf:
            return float(hi)
        return float(np.sum(support * dnhyper(ncp)))

    def pnhyper(q: int, ncp: float, upper: bool = False) -> float:
        if ncp == 1:
            h = sps.hypergeom(m + n, m, k)
            return float(h.sf(x - 1) if upper else h.cdf(x))
        if ncp == 0:
            return float(q <= lo if upper else q >= lo)
        if ncp == math.inf:
            return float(q <= hi if upper else q >= hi)
        d = dnhyper(ncp)
        return float(np.sum(d[support >= q] if upper else d[support <= q]))

    def mle() -> float:
        if x == lo:
            return 0.0
        if x == hi:
            return math.inf
        mu = mnhyper(1.0)
        if mu > x:
            return zeroin(lambda r: mnhyper(r) - x, 0.0, 1.0)
        if mu < x:
            return 1.0 / zeroin(lambda r: mnhyper(1.0 / r) - x, _EPS, 1.0)
        return 1.0

    def ncp_upper(alpha: float) -> float:
        if x == hi:
            return math.inf
        p = pnhyper(x, 1.0)
        if p < alpha:
            return zeroin(lambda r: pnhyper(x, r) - alpha, 0.0, 1.0)
        if p > alpha:
            return 1.0 / zeroin(lambda r: pnhyper(x, 1.0 / r) - alpha, _EPS, 1.0)
        return 1.0

    def ncp_lower(alpha: float) -> float:
        if x == lo:
            return 0.0
        p = pnhyper(x, 1.0, upper=True)
        if p > alpha:
            return zeroin(lambda r: pnhyper(x, r, upper=True) - alpha, 0.0, 1.0)
        if p < alpha:
            return 1.0 / zeroin(lambda r: pnhyper(x, 1.0 / r, upper=True) - alpha, _EPS, 1.0)
        return 1.0

    alpha = (1.0 - confidence) / 2.0
    return (mle(), ncp_lower(alpha), ncp_upper(alpha))
