"""Multiplicity within the analysis plan's families: the p values of one family adjusted by its method (Holm,
Benjamini-Hochberg or none, :data:`lungtrial.stats.MULTIPLICITY`) and a text saying how.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lungtrial.stats._plan import MULTIPLICITY, MULTIPLICITY_LABEL

if TYPE_CHECKING:
    from lungtrial.stats._plan import Plan


def adjust(p_values: Sequence[float], method: str) -> np.ndarray:
    """P values adjusted for multiplicity within one family (statsmodels ``multipletests``).

    Parameters
    ----------
    p_values : sequence of float
        Raw p values; NaN (not tested) stays NaN and does not count towards the family's size.
    method : str
        ``holm``, ``benjamini-hochberg`` or ``none`` (:data:`MULTIPLICITY`).
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if MULTIPLICITY[method] is None or not ok.any():
        out[ok] = p[ok]
        return out
    out[ok] = multipletests(p[ok], method=MULTIPLICITY[method])[1]
    return out


def adjustment_text(method: str, n: int) -> str:
    """How a family's p values were adjusted, e.g. ``"Holm, 4 tests in family"``."""
    if MULTIPLICITY[method] is None:
        return "none (unadjusted)"
    if n <= 1:
        return "none needed (only test in family)"
    return f"{MULTIPLICITY_LABEL[method]}, {n} tests in family"


def adjust_families(table: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """``table`` (columns ``family``, ``p_value``) with ``p_adjusted`` and ``adjustment`` per family."""
    table = table.copy()
    table["p_adjusted"] = np.nan
    table["adjustment"] = ""
    for family, idx in table.groupby("family", sort=False).groups.items():
        method = plan.method(str(family))
        p = table.loc[idx, "p_value"].astype(float)
        table.loc[idx, "p_adjusted"] = adjust(p, method)
        table.loc[idx, "adjustment"] = adjustment_text(method, int(np.isfinite(p).sum()))
    return table
