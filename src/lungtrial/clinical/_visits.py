"""Nominal visits: study-day windows and the one row per visit and subject they keep."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def visit_windows(visits: Mapping[str, Sequence[float]]) -> list[tuple[str, float, float]]:
    """Validate visit windows (name -> inclusive study-day ``[lo, hi]``); sorted by ``lo``, non-overlapping.

    Raises
    ------
    ValueError
        A window is not ``[lo, hi]`` with ``lo <= hi``, or two windows overlap.
    """
    windows = []
    for name, bounds in visits.items():
        if len(bounds) != 2 or not float(bounds[0]) <= float(bounds[1]):
            raise ValueError(f"clinical.visits.{name}: expected [first_day, last_day], got {list(bounds)}")
        windows.append((str(name), float(bounds[0]), float(bounds[1])))
    windows.sort(key=lambda w: w[1])
    for (a, _, a_hi), (b, b_lo, _) in zip(windows, windows[1:]):
        if b_lo <= a_hi:
            raise ValueError(f"clinical.visits: windows {a} and {b} overlap")
    return windows


def _visit_target(name: str, lo: float, hi: float) -> float:
    """Nominal study day of a visit: the number ending its name (``day14`` -> 14) when inside the window,
    else the window's midpoint."""
    m = re.search(r"(\d+)$", name)
    return float(m.group(1)) if m and lo <= float(m.group(1)) <= hi else (lo + hi) / 2


def assign_visits(
    frame: pd.DataFrame,
    windows: Sequence[tuple[str, float, float]],
    by: Sequence[str],
    day: str = "study_day",
    prefer: pd.Series | None = None,
    first_dose_day: float | None = None,
) -> pd.Series:
    """Label rows with nominal visits; at most one row per visit and group.

    A row is in a window when its whole study day (``floor(day)``) lies in ``[lo, hi]``. When several rows of a
    group (e.g. one subject's scans, or one subject's CRP values) fall into one window, one is taken:

    1. rows where ``prefer`` is true first (e.g. measured scans before excluded ones);
    2. for a window containing day 0 (baseline): the last row taken before the first dose; a row taken after it
       is never baseline, so a group whose only rows in the window follow the dose has no baseline row (see
       ``first_dose_day``);
    3. for other windows: the row closest to the nominal day (the number ending the visit name, ``day14`` ->
       14, else the window's midpoint); on a tie the earlier row.

    Parameters
    ----------
    frame : DataFrame
        Holds ``day`` (study days, float) and the ``by`` columns.
    windows : sequence
        From :func:`visit_windows`.
    by : sequence of str
        Grouping columns.
    day : str
        Column of study days.
    prefer : Series of bool, optional
        Rows to take first.
    first_dose_day : float, optional
        The first dose as a study day (days from midnight of day 0; 0.375 is 09:00 on day 0), for rows with a time
        of day (labs): a row is before the dose when its study day is less. None for rows with a date only
        (scans): a row dated on or before day 0 counts as before the dose, since the baseline CT is scheduled
        before the first dose.

    Returns
    -------
    Series of str
        Visit name, or ``""`` for rows outside every window or not taken, aligned with ``frame``.
    """
    out = pd.Series("", index=frame.index, dtype=object)
    days = frame[day].astype(float)
    whole = np.floor(days)
    rank_prefer = (~prefer.astype(bool)).astype(int) if prefer is not None else pd.Series(0, index=frame.index)
    for name, lo, hi in windows:
        inside = whole.between(lo, hi)
        if lo <= 0 <= hi:  # baseline: the last row before the first dose
            inside &= whole <= 0 if first_dose_day is None else days < float(first_dose_day)
            primary, secondary = pd.Series(0, index=frame.index), -days
        else:
            primary, secondary = (days - _visit_target(name, lo, hi)).abs(), days
        if not inside.any():
            continue
        ranked = pd.DataFrame(
            {"p": rank_prefer, "a": primary, "b": secondary, **{f"g{i}": frame[c] for i, c in enumerate(by)}}
        )[inside]
        ranked = ranked.sort_values(["p", "a", "b"], kind="stable")
        first = ranked.groupby([f"g{i}" for i in range(len(by))], sort=False, dropna=False).head(1).index
        out.loc[first] = name
    return out
