"""Censored lab values (``"<0.5"``, ``">1000"``): one substitution rule for models, tests and plots alike.

The clinical tables hold a censored value as its limit in ``value`` and the direction (``"<"`` or ``">"``) in
``censored``. Every analysis turns them into numbers through :func:`censor_values` with one rule, the
configured one (default :data:`DEFAULT_CENSOR_RULE`); :func:`censoring_sensitivity` reruns a comparison under
the other rules, and :func:`censoring_changes_ranks` says where the rule could change the order of the values
(a measured value beyond a censoring limit, or censored values with different limits), i.e. where even rank
methods depend on the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

CENSOR_RULES: dict[str, str] = {
    "half_limit": 'below the limit ("<"): half the limit; above (">"): the limit',
    "limit": "the limit itself, either side",
    "limit_sqrt2": 'below the limit ("<"): the limit / sqrt(2); above (">"): the limit',
    "exclude": "censored values left out",
}
"""Substitution rules for censored values and what each does."""

DEFAULT_CENSOR_RULE = "half_limit"
"""Rule used when none is configured: half the detection limit below it (a common convention for values under a
lower limit of quantification), the limit above an upper limit (nothing better is known of the value)."""


def check_rule(rule: str) -> str:
    """Return ``rule`` when it is one of :data:`CENSOR_RULES`, else raise ``ValueError`` naming the choices."""
    if rule not in CENSOR_RULES:
        raise ValueError(f"censoring rule {rule!r}: expected one of {', '.join(CENSOR_RULES)}")
    return rule


def _flags(flags: Sequence[str] | pd.Series, index: pd.Index) -> pd.Series:
    f = pd.Series(flags, index=index) if not isinstance(flags, pd.Series) else flags.set_axis(index)
    return f.fillna("").astype(str).str.strip()


def censor_values(
    values: Sequence[float] | pd.Series, flags: Sequence[str] | pd.Series, rule: str = DEFAULT_CENSOR_RULE
) -> pd.Series:
    """Numbers for analysis from values and their censoring flags, by one rule.

    Parameters
    ----------
    values : sequence of float or pandas.Series
        The measured value, or the limit where censored (in the analyte's unit).
    flags : sequence of str or pandas.Series
        ``""`` (or missing) for a measured value, ``"<"`` below a lower limit, ``">"`` above an upper limit.
    rule : str
        One of :data:`CENSOR_RULES` (default :data:`DEFAULT_CENSOR_RULE`).

    Returns
    -------
    pandas.Series
        Float values in the same unit and index as ``values`` (a Series) or a new range index; NaN where
        the value is missing or the rule is ``"exclude"`` and the value is censored.
    """
    check_rule(rule)
    v = pd.to_numeric(pd.Series(values) if not isinstance(values, pd.Series) else values, errors="coerce")
    v = v.astype(float)
    f = _flags(flags, v.index)
    below, above = f == "<", f == ">"
    if rule == "half_limit":
        return v.where(~below, v / 2.0)
    if rule == "limit_sqrt2":
        return v.where(~below, v / math.sqrt(2.0))
    if rule == "exclude":
        return v.where(~(below | above))
    return v


def censoring_changes_ranks(values: Sequence[float] | pd.Series, flags: Sequence[str] | pd.Series) -> bool:
    """True when the order of the values could depend on how censored values are filled in.

    That is the case when a measured value lies at or below a ``"<"`` limit (at or above a ``">"`` limit: the rule
    decides whether they tie), when
    censored values of the same direction have different limits, or when a ``"<"`` limit lies above a
    ``">"`` limit; then rank tests and medians too depend on the censoring rule. A single limit below
    (above) every measured value leaves all ranks unchanged whatever the rule.
    """
    v = pd.to_numeric(pd.Series(values) if not isinstance(values, pd.Series) else values, errors="coerce")
    v = v.astype(float)
    f = _flags(flags, v.index)
    ok = v.notna()
    v, f = v[ok], f[ok]
    measured = v[(f != "<") & (f != ">")]
    below, above = v[f == "<"], v[f == ">"]
    if below.nunique() > 1 or above.nunique() > 1:
        return True
    if len(below) and len(measured) and (measured <= below.max()).any():
        return True
    if len(above) and len(measured) and (measured >= above.min()).any():
        return True
    return bool(len(below) and len(above) and below.max() > above.min())


def censoring_sensitivity(
    frame: pd.DataFrame,
    analysis: Callable[[pd.DataFrame], pd.DataFrame | dict],
    rules: Iterable[str] = tuple(CENSOR_RULES),
    value: str = "value",
    flag: str = "censored",
) -> pd.DataFrame:
    """Rerun one analysis under each censoring rule: a sensitivity analysis of the rule.

    Parameters
    ----------
    frame : pandas.DataFrame
        The data, with the value (or limit) in column ``value`` and the flag in column ``flag``.
    analysis : callable
        Called once per rule with ``frame`` plus a column ``y`` (:func:`censor_values` under that rule); it
        returns a DataFrame (any rows) or a dict (one row).
    rules : iterable of str
        Rules to run (default all of :data:`CENSOR_RULES`).

    Returns
    -------
    pandas.DataFrame
        The analyses' rows, each with ``censor_rule`` (the rule's name), ``n_censored`` (values flagged in
        ``frame``) and ``censoring_changes_ranks`` (:func:`censoring_changes_ranks` over the whole column).
    """
    n_cens = int(_flags(frame[flag], frame.index).isin(["<", ">"]).sum())
    changes = censoring_changes_ranks(frame[value], frame[flag])
    parts = []
    for rule in rules:
        out = analysis(frame.assign(y=censor_values(frame[value], frame[flag], rule)))
        part = pd.DataFrame([out]) if isinstance(out, dict) else out.copy()
        part.insert(0, "censor_rule", rule)
        part["n_censored"] = n_cens
        part["censoring_changes_ranks"] = changes
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def limits_as_text(values: Sequence[float], flags: Sequence[str]) -> str:
    """The distinct censoring limits, e.g. ``"<0.5, >1000"`` (empty when nothing is censored)."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    f = pd.Series(flags).fillna("").astype(str).str.strip().to_numpy()
    pairs = sorted({(str(a), float(b)) for a, b in zip(f, v) if a in ("<", ">") and np.isfinite(b)})
    return ", ".join(f"{a}{b:g}" for a, b in pairs)
