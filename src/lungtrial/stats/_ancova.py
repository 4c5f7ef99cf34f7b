"""ANCOVA of the change from baseline, as the analysis plan runs it for imaging outcomes and labs at a visit.

:func:`ancova`: ordinary least squares of the change from baseline on the baseline value and the arm
(statsmodels OLS), the arm coefficient being the difference in adjusted mean change, treatment - reference, with
its t-based confidence interval; on the log scale the model is fitted to log values and the difference is
reported as a ratio of geometric means.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def ancova(
    data: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    log: bool = False,
) -> dict[str, object]:
    """ANCOVA of the change from baseline on baseline and arm (statsmodels OLS), the arm difference with its CI.

    The model is ``change ~ baseline + treated`` with ``change = value - baseline`` and ``treated`` 1 for the
    treatment arm; the ``treated`` coefficient is the difference in mean change adjusted for baseline,
    treatment - reference (the same coefficient as in ``value ~ baseline + treated``). Inference uses the
    t distribution with ``n - 3`` degrees of freedom, as R's ``lm``.

    Parameters
    ----------
    data : DataFrame
        ``subject_id, arm, baseline, value`` (one row per subject, in the outcome's unit).
    reference, treatment : str
        Arm names.
    min_per_arm : int
        No model when an arm has fewer subjects with both values.
    confidence : float
        Confidence level of the interval.
    log : bool
        Fit on natural-log values (baseline and value must be positive); the difference is then reported as the
        ratio of geometric means (exp of the coefficient), in ``estimate``, ``ci_low``, ``ci_high``.

    Returns
    -------
    dict
        ``n_reference, n_treatment, mean_change_reference, mean_change_treatment`` (raw means, unit of the
        outcome; on the log scale the geometric mean ratio value / baseline), ``estimate, std_error, t_value, df,
        ci_low, ci_high, p_value, baseline_slope, effect, test, note``.
    """
    import statsmodels.api as sm

    d = data.loc[data["arm"].astype(str).isin([reference, treatment])].copy()
    d["baseline"] = pd.to_numeric(d["baseline"], errors="coerce")
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d.dropna(subset=["baseline", "value"])
    notes = []
    if log:
        positive = (d["baseline"] > 0) & (d["value"] > 0)
        if (~positive).any():
            notes.append(f"{int((~positive).sum())} subject(s) without positive values left out of the log scale")
        d = d.loc[positive]
        d["baseline"], d["value"] = np.log(d["baseline"]), np.log(d["value"])
    d["change"] = d["value"] - d["baseline"]
    d["treated"] = (d["arm"].astype(str) == treatment).astype(float)
    n_ref, n_trt = int((d["treated"] == 0).sum()), int((d["treated"] == 1).sum())
    effect = (
        "ratio of geometric means of value / baseline, adjusted for baseline (treatment / reference)"
        if log
        else "difference in mean change adjusted for baseline (treatment - reference)"
    )
    row: dict[str, object] = {
        "n_reference": n_ref,
        "n_treatment": n_trt,
        "mean_change_reference": math.nan,
        "mean_change_treatment": math.nan,
        "estimate": math.nan,
        "std_error": math.nan,
        "t_value": math.nan,
        "df": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "baseline_slope": math.nan,
        "effect": effect,
        "test": "ANCOVA: change ~ baseline + arm (OLS, t test with n - 3 df)",
        "note": "",
    }
    for key, arm_flag in (("reference", 0.0), ("treatment", 1.0)):
        mean = float(d.loc[d["treated"] == arm_flag, "change"].mean()) if len(d) else math.nan
        row[f"mean_change_{key}"] = math.exp(mean) if log and np.isfinite(mean) else mean
    small = [f"{arm} has n={n}" for arm, n in ((reference, n_ref), (treatment, n_trt)) if n < max(min_per_arm, 2)]
    if small:
        notes.insert(0, "not tested: " + ", ".join(small) + f" with baseline and value (min_per_arm={min_per_arm})")
        row["note"] = "; ".join(notes)
        return row
    x = sm.add_constant(d[["baseline", "treated"]].to_numpy(dtype=float), has_constant="add")
    fit = sm.OLS(d["change"].to_numpy(dtype=float), x).fit()
    lo, hi = fit.conf_int(alpha=1.0 - confidence)[2]
    est = float(fit.params[2])
    transform = math.exp if log else float
    row |= {
        "estimate": transform(est),
        "std_error": float(fit.bse[2]),
        "t_value": float(fit.tvalues[2]),
        "df": float(fit.df_resid),
        "ci_low": transform(float(lo)),
        "ci_high": transform(float(hi)),
        "p_value": float(fit.pvalues[2]),
        "baseline_slope": float(fit.params[1]),
        "note": "; ".join(notes),
    }
    return row
