"""Time-to-event tables: durations and events of an endpoint, Kaplan-Meier curves, the log-rank test, and the
comparison of two arms (Kaplan-Meier median per arm, log-rank test, Cox hazard ratio) as survival does in R
(:mod:`lungtrial.stats._survival`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lungtrial.stats._compare import _header, _too_few, as_bool
from lungtrial.stats._survival import cox_hazard_ratio, km_median

SURVIVAL_ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "symptom_resolution": ("Time to symptom resolution", "days_to_symptom_resolution", "symptom_resolved"),
    "discharge": ("Time to discharge", "days_to_discharge", "discharged"),
}
"""Time-to-event endpoints: name -> (label, duration column in days, event column)."""


def survival_data(
    subjects: pd.DataFrame, endpoint: str, endpoints: Mapping[str, tuple[str, str, str]] | None = None
) -> pd.DataFrame:
    """Durations (days) and event flags of one time-to-event endpoint: subject_id, arm, duration, event.

    ``endpoints`` maps names to (label, duration column, event column) (default :data:`SURVIVAL_ENDPOINTS`; the
    workflow passes the analysis plan's, :meth:`lungtrial.stats.Plan.time_to_event`). Subjects without a duration
    are dropped (they cannot be placed on the time axis).
    """
    _, dur_col, ev_col = (SURVIVAL_ENDPOINTS if endpoints is None else endpoints)[endpoint]
    d = pd.DataFrame(
        {
            "subject_id": subjects["subject_id"],
            "arm": subjects["arm"].astype(str),
            "duration": pd.to_numeric(subjects[dur_col], errors="coerce"),
            "event": as_bool(subjects[ev_col]).fillna(False).astype(bool),
        }
    )
    return d.dropna(subset=["duration"]).reset_index(drop=True)


def kaplan_meier(durations: Sequence[float], events: Sequence[bool], confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier estimate (lifelines): columns time (days), survival, ci_low, ci_high (Greenwood, log-log)."""
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(alpha=1.0 - confidence).fit(np.asarray(durations, float), np.asarray(events, bool))
    ci = kmf.confidence_interval_survival_function_
    return pd.DataFrame(
        {
            "time": kmf.survival_function_.index.to_numpy(dtype=float),
            "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
            "ci_low": ci.iloc[:, 0].to_numpy(),
            "ci_high": ci.iloc[:, 1].to_numpy(),
        }
    )


def logrank(
    durations_a: Sequence[float], events_a: Sequence[bool], durations_b: Sequence[float], events_b: Sequence[bool]
) -> tuple[float, float]:
    """Two-sample log-rank test (lifelines): chi-square statistic (1 df) and p value; both NaN without any event
    (there is nothing to test, and a p of 1 would count in a multiplicity family)."""
    from lifelines.statistics import logrank_test

    if not (np.asarray(events_a, bool).any() or np.asarray(events_b, bool).any()):
        return math.nan, math.nan
    res = logrank_test(
        np.asarray(durations_a, float),
        np.asarray(durations_b, float),
        event_observed_A=np.asarray(events_a, bool),
        event_observed_B=np.asarray(events_b, bool),
    )
    return float(res.test_statistic), float(res.p_value)


def compare_survival(
    durations: Sequence[float],
    events: Sequence[bool],
    arms: Sequence[str],
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> dict[str, object]:
    """Kaplan-Meier median per arm, log-rank test and Cox hazard ratio, treatment vs reference (one table row).

    Parameters
    ----------
    durations : sequence of float
        Days to the event or to censoring; subjects without one are left out (counted in ``note``).
    events : sequence of bool
        True where the event was observed, false where censored at the duration.
    arms : sequence of str
        Each subject's arm; only ``reference`` and ``treatment`` are used.
    reference, treatment : str
        The arms compared.
    min_per_arm : int
        No test when an arm has fewer subjects.
    confidence : float
        Level of the median's limits and of the hazard ratio's interval.

    Returns
    -------
    dict
        ``n_*`` and ``events_*`` per arm; ``median_*`` with ``median_*_ci_low``, ``median_*_ci_high`` (days, as R's
        ``survfit``: the midpoint where the curve lies flat at 0.5; NaN when the curve or the limit does not reach
        0.5; :func:`lungtrial.stats.km_median`); ``chi2`` and ``p_value`` (log-rank, :func:`logrank`); ``test``;
        ``hazard_ratio, hr_ci_low, hr_ci_high, hr_p_value`` (Cox model, Efron ties, Wald interval and p;
        :func:`lungtrial.stats.cox_hazard_ratio`) and ``hr_note`` (why it is not estimable); ``note``.
    """
    d = pd.DataFrame(
        {
            "duration": pd.to_numeric(pd.Series(durations), errors="coerce").to_numpy(dtype=float),
            "event": pd.Series(events).fillna(False).astype(bool).to_numpy(),
            "arm": pd.Series(arms).astype(str).to_numpy(),
        }
    )
    d = d.loc[d["arm"].isin([reference, treatment])]
    missing = int(d["duration"].isna().sum())
    d = d.dropna(subset=["duration"])
    row: dict[str, object] = {}
    parts = {}
    for key, arm in (("reference", reference), ("treatment", treatment)):
        a = d.loc[d["arm"] == arm]
        parts[key] = a
        med, lo, hi = km_median(a["duration"], a["event"], confidence)
        row |= {f"n_{key}": len(a), f"events_{key}": int(a["event"].sum()), f"median_{key}": med,
                f"median_{key}_ci_low": lo, f"median_{key}_ci_high": hi}
    note = _too_few(row["n_reference"], row["n_treatment"], reference, treatment, min_per_arm)
    row |= {"chi2": math.nan, "p_value": math.nan,
            "test": "Kaplan-Meier; log-rank (1 df); Cox proportional hazards (Efron ties, Wald CI)"}
    hr = {"hazard_ratio": math.nan, "hr_ci_low": math.nan, "hr_ci_high": math.nan, "hr_p_value": math.nan,
          "hr_note": ""}
    if not note:
        row["chi2"], row["p_value"] = logrank(
            parts["reference"]["duration"], parts["reference"]["event"],
            parts["treatment"]["duration"], parts["treatment"]["event"],
        )
        cox = cox_hazard_ratio(d["duration"], d["event"], d["arm"] == treatment, confidence)
        hr = {k: cox[k] for k in hr}
    without = f"{missing} subject(s) without a duration left out" if missing else ""
    return row | hr | {"note": "; ".join(n for n in (note, without) if n)}


def survival(
    subjects: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    endpoints: Mapping[str, tuple[str, str, str]] | None = None,
) -> pd.DataFrame:
    """Kaplan-Meier median per arm, log-rank test and Cox hazard ratio, one row per time-to-event endpoint.

    ``endpoints`` as for :func:`survival_data` (default :data:`SURVIVAL_ENDPOINTS`); endpoints whose columns are
    not in ``subjects`` are left out. Columns: endpoint, label, reference_arm, treatment_arm and those of
    :func:`compare_survival`.
    """
    endpoints = SURVIVAL_ENDPOINTS if endpoints is None else endpoints
    rows = []
    for endpoint, (label, dur_col, ev_col) in endpoints.items():
        if dur_col not in subjects.columns or ev_col not in subjects.columns:
            continue
        row = compare_survival(
            subjects[dur_col], as_bool(subjects[ev_col]).fillna(False), subjects["arm"], reference, treatment,
            min_per_arm, confidence,
        )
        rows.append({"endpoint": endpoint, "label": label, **_header(reference, treatment), **row})
    return pd.DataFrame(rows)
