"""Baseline and change from baseline: each subject's baseline value (the last before the first dose), Table 1
(baseline characteristics by arm), the change from baseline of the imaging metrics by visit and its comparison by
arm, and the labels and units of the scans table's metrics.

Censored lab values (``censored`` is ``"<"`` or ``">"``, ``value`` holds the limit) become numbers by one rule,
the same for models, tests and plots (:mod:`lungtrial.stats._censoring`); Table 1 reports the number censored.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lungtrial.stats._censoring import DEFAULT_CENSOR_RULE, censor_values
from lungtrial.stats._compare import _header, compare_continuous, median_iqr

IMAGING_ENDPOINTS: dict[str, str] = {
    "pct_opacity": "Whole-lung lesion volume, % of lung volume",
    "pct_consolidation": "Solid-component (consolidation) volume, % of lung volume",
}
"""Imaging metrics compared as change from baseline and modelled over time."""

BASELINE_IMAGING: dict[str, str] = {
    "lung_volume_ml": "Lung volume, mL",
    "pct_opacity": "Opacity, % of lung",
    "pct_ground_glass": "Ground glass, % of lung",
    "pct_consolidation": "Consolidation, % of lung",
    "severity_score": "CT severity score",
}
"""Imaging metrics summarised at baseline in Table 1 (those present in the scans table)."""


def before_first_dose(study_day: pd.Series, first_dose_day: float | None = None) -> pd.Series:
    """True for rows taken before the first dose.

    Parameters
    ----------
    study_day : Series of float
        Days from midnight of day 0 (a lab at 06:00 on day 2 is 2.25).
    first_dose_day : float, optional
        The first dose as a study day (0.375 = 09:00 on day 0) for rows with a time of day (labs): before it means
        ``study_day < first_dose_day``. None for rows with a date only (scans): a row dated on or before day 0
        counts as before the dose (the baseline CT is scheduled before the first dose).
    """
    days = pd.to_numeric(study_day, errors="coerce").astype(float)
    if first_dose_day is None:
        return np.floor(days) <= 0
    return days < float(first_dose_day)


def baseline_values(
    frame: pd.DataFrame,
    columns: Sequence[str],
    baseline_visit: str = "baseline",
    lookback_days: float = 0.0,
    first_dose_day: float | None = None,
) -> pd.DataFrame:
    """Per subject, the baseline: the last row before the first dose in the baseline visit, never one after it.

    The clinical stage labels at most one row per subject with the baseline visit: the last one before the first
    dose inside the baseline window (:func:`lungtrial.clinical.assign_visits`). A subject without such a row gets
    the last row before the first dose from up to ``lookback_days`` before day 0 instead, flagged in
    ``baseline_flag`` (a value from a wider window than the visit's).

    Parameters
    ----------
    frame : DataFrame
        ``subject_id, arm, visit, study_day`` and ``columns``; rows with a ``status`` other than ``"ok"`` (excluded
        scans) are ignored.
    columns : sequence of str
        Columns returned.
    baseline_visit : str
        Name of the baseline visit.
    lookback_days : float
        How far before day 0 (days) a flagged baseline may lie; 0: no flagged baselines.
    first_dose_day : float, optional
        See :func:`before_first_dose` (None for dated rows such as scans).

    Returns
    -------
    DataFrame
        One row per subject with a baseline: ``subject_id, arm``, ``columns``, ``baseline_day`` (study day of the
        value) and ``baseline_flag`` (``""``, or e.g. ``"day -5, before the baseline window"``).
    """
    sel = frame.loc[frame["status"] == "ok"] if "status" in frame.columns else frame
    sel = sel.loc[before_first_dose(sel["study_day"], first_dose_day)]
    sel = sel.assign(_day=pd.to_numeric(sel["study_day"], errors="coerce").astype(float))
    in_visit = sel.loc[sel["visit"].astype(str) == baseline_visit]
    in_visit = in_visit.sort_values(["subject_id", "_day"]).drop_duplicates("subject_id", keep="last")
    in_visit = in_visit.assign(baseline_flag="")
    parts = [in_visit]
    if lookback_days > 0:
        earlier = sel.loc[~sel["subject_id"].isin(set(in_visit["subject_id"])) & (sel["_day"] >= -lookback_days)]
        earlier = earlier.sort_values(["subject_id", "_day"]).drop_duplicates("subject_id", keep="last")
        parts.append(earlier.assign(baseline_flag=[f"day {d:g}, before the baseline window" for d in earlier["_day"]]))
    out = pd.concat(parts, ignore_index=True).sort_values("subject_id", kind="stable")
    out = out.assign(baseline_day=out["_day"])
    return out[["subject_id", "arm", *columns, "baseline_day", "baseline_flag"]].reset_index(drop=True)


def baseline_labs(
    labs: pd.DataFrame,
    baseline_visit: str = "baseline",
    lookback_days: float = 0.0,
    first_dose_day: float = 0.0,
) -> pd.DataFrame:
    """Per subject and analyte, the last lab value before the first dose (:func:`baseline_values`).

    ``first_dose_day`` is the first dose as a study day (default midnight at the start of day 0). Returns columns
    subject_id, arm, analyte, analyte_label, unit, value, censored, baseline_day, baseline_flag.
    """
    cols = ["subject_id", "arm", "analyte", "analyte_label", "unit", "value", "censored", "baseline_day",
            "baseline_flag"]
    sel = labs.loc[labs["value"].notna()]
    parts = [
        baseline_values(d, ["analyte", "analyte_label", "unit", "value", "censored"], baseline_visit, lookback_days,
                        first_dose_day)
        for _, d in sel.groupby("analyte", sort=True)
    ]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


TABLE1_QUARTILES = "Q1 and Q3 by linear interpolation between order statistics (R quantile type 7, numpy 'linear')"
"""How Table 1 computes quartiles (stated in the table's caption)."""

TABLE1_ROUNDING = (
    "each row's numbers (median, Q1, Q3 of every arm) are given to the same number of decimals: those that show "
    "the row's largest absolute value to 3 significant figures (no decimals from 100 up, at most 4); percentages "
    "are whole numbers"
)
"""Table 1's rounding rule (stated in the table's caption)."""


def table1_decimals(values: Sequence[float]) -> int:
    """Decimals of a Table 1 row: the largest absolute value to 3 significant figures (0 from 100 up, at most 4)."""
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return 0
    return int(min(4, max(0, 2 - math.floor(math.log10(float(v.max()))))))


def table1(
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    scans: pd.DataFrame,
    arms: Sequence[str],
    baseline_visit: str = "baseline",
    lookback_days: float = 0.0,
    first_dose_day: float = 0.0,
    censoring: str = DEFAULT_CENSOR_RULE,
) -> pd.DataFrame:
    """Baseline characteristics by arm ("Table 1"), descriptive only (no tests).

    Rows: number of subjects; age, median (Q1, Q3); sex and severity, n (%) of those with a value; each
    baseline lab (the last value before the first dose, :func:`baseline_labs`), median (Q1, Q3) with the number
    censored; baseline imaging metrics of :data:`BASELINE_IMAGING` (the last measured scan on or before day 0),
    median (Q1, Q3). Quartiles: :data:`TABLE1_QUARTILES`; rounding: :data:`TABLE1_ROUNDING`.

    Censored lab values (``"<"``, ``">"``) enter by ``censoring`` (:data:`lungtrial.stats.CENSOR_RULES`; config
    ``analysis.censoring``), the rule of the models, tests and plots; under ``exclude`` they are left out of the
    summary and still counted as censored in the cell.

    Returns
    -------
    DataFrame
        ``section, variable, statistic``, one column per arm (in the order of ``arms``) and ``all``. Missing values
        are left out; a cell reads ``median (Q1, Q3) [n=k]`` when k is below the arm's size, and says how many
        values are censored or come from before the baseline window (``lookback_days``).
    """
    arms = list(arms)
    groups = {arm: subjects.loc[subjects["arm"].astype(str) == arm, "subject_id"].astype(str) for arm in arms}
    groups["all"] = subjects.loc[subjects["arm"].astype(str).isin(arms), "subject_id"].astype(str)
    sizes = {k: len(v) for k, v in groups.items()}
    rows: list[dict[str, object]] = [
        {"section": "Subjects", "variable": "Subjects", "statistic": "n", **{k: str(n) for k, n in sizes.items()}}
    ]

    def cont(section: str, variable: str, data: pd.DataFrame, col: str, censored_col: str | None = None) -> None:
        row: dict[str, object] = {"section": section, "variable": variable, "statistic": "median (Q1, Q3)"}
        cells = {}
        for key, ids in groups.items():
            d = data.loc[data["subject_id"].astype(str).isin(set(ids))]
            v = pd.to_numeric(d[col], errors="coerce").dropna()
            cells[key] = (d, median_iqr(v), len(v))
        decimals = table1_decimals([x for _, stats3, _ in cells.values() for x in stats3])
        for key, (d, (med, q1, q3), n) in cells.items():
            cell = "NA" if not np.isfinite(med) else f"{med:.{decimals}f} ({q1:.{decimals}f}, {q3:.{decimals}f})"
            if n < sizes[key]:
                cell += f" [n={n}]"
            if censored_col is not None:  # censored values, counted also where the rule leaves them out
                k = int((d[censored_col].fillna("").astype(str).str.strip() != "").sum())
                if k:
                    cell += f" ({k} censored)"
            if "baseline_flag" in d.columns:
                used = pd.to_numeric(d[col], errors="coerce").notna()
                k = int((d.loc[used, "baseline_flag"].fillna("").astype(str) != "").sum())
                if k:
                    cell += f" ({k} before the baseline window)"
            row[key] = cell
        rows.append(row)

    def cat(section: str, variable: str, col: str) -> None:
        levels = sorted(subjects[col].dropna().astype(str).unique())
        for level in levels:
            row: dict[str, object] = {"section": section, "variable": f"{variable}: {level}", "statistic": "n (%)"}
            for key, ids in groups.items():
                d = subjects.loc[subjects["subject_id"].astype(str).isin(set(ids)), col].dropna().astype(str)
                k = int((d == level).sum())
                row[key] = f"{k} ({100.0 * k / len(d):.0f}%)" if len(d) else "NA"
            rows.append(row)

    if "age" in subjects.columns:
        cont("Demographics", "Age, years", subjects, "age")
    for col, label in (("sex", "Sex"), ("severity", "Severity")):
        if col in subjects.columns:
            cat("Demographics", label, col)
    base = baseline_labs(labs, baseline_visit, lookback_days, first_dose_day)
    base["value"] = censor_values(pd.to_numeric(base["value"], errors="coerce"), base["censored"], censoring)
    for _, d in base.groupby("analyte", sort=True):
        label = f"{d['analyte_label'].iloc[0]}, {d['unit'].iloc[0]}"
        cont("Baseline labs", label, d, "value", censored_col="censored")
    img_cols = [c for c in BASELINE_IMAGING if c in scans.columns]
    img = baseline_values(scans, img_cols, baseline_visit, lookback_days)
    for col in img_cols:
        cont("Baseline imaging", BASELINE_IMAGING[col], img, col)
    return pd.DataFrame(rows)


def change_from_baseline(
    scans: pd.DataFrame, metrics: Sequence[str], visits: Sequence[str], lookback_days: float = 0.0
) -> pd.DataFrame:
    """Change of imaging metrics from baseline to each later nominal visit, per subject.

    ``visits`` lists the nominal visits in order, the first being baseline. Only measured scans (status
    ``"ok"``) labelled with a visit count; the clinical stage labels at most one scan per subject and visit
    (should there be several, the one closest to day 0 is baseline and the latest one counts for a later
    visit). Returns long form: subject_id, arm, visit, metric, baseline, value, change (``value - baseline``,
    in the metric's unit, e.g. percentage points). ``lookback_days``: the analysis plan's baseline look-back
    (:func:`baseline_values`), so that the figure shows the subjects the statistics compare.
    """
    visits = list(visits)
    base = baseline_values(scans, metrics, visits[0], lookback_days=lookback_days).set_index("subject_id")
    ok = scans.loc[scans["status"] == "ok"] if "status" in scans.columns else scans
    rows = []
    for visit in visits[1:]:
        sel = ok.loc[ok["visit"].astype(str) == visit].sort_values(["subject_id", "study_day"])
        sel = sel.drop_duplicates("subject_id", keep="last")
        for _, r in sel.iterrows():
            if r["subject_id"] not in base.index:
                continue
            for metric in metrics:
                b = float(base.at[r["subject_id"], metric])
                v = float(r[metric])
                rows.append(
                    {
                        "subject_id": r["subject_id"],
                        "arm": r["arm"],
                        "visit": visit,
                        "metric": metric,
                        "baseline": b,
                        "value": v,
                        "change": v - b,
                    }
                )
    cols = ["subject_id", "arm", "visit", "metric", "baseline", "value", "change"]
    return pd.DataFrame(rows, columns=cols).dropna(subset=["change"])


def imaging_change(
    scans: pd.DataFrame,
    visits: Sequence[str],
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Change from baseline in each :data:`IMAGING_ENDPOINTS` metric at each later visit, compared by arm.

    One row per (endpoint, visit): median (IQR) change per arm, Mann-Whitney U and the Hodges-Lehmann
    difference ``treatment - reference`` in percentage points.
    """
    metrics = [m for m in IMAGING_ENDPOINTS if m in scans.columns]
    change = change_from_baseline(scans, metrics, visits)
    rows = []
    for metric in metrics:
        for visit in list(visits)[1:]:
            d = change.loc[(change["metric"] == metric) & (change["visit"] == visit)]
            row = compare_continuous(
                d.loc[d["arm"].astype(str) == reference, "change"],
                d.loc[d["arm"].astype(str) == treatment, "change"],
                reference,
                treatment,
                min_per_arm,
                confidence,
            )
            rows.append(
                {
                    "endpoint": metric,
                    "label": IMAGING_ENDPOINTS[metric],
                    "visit": visit,
                    "unit": "percentage points",
                    **_header(reference, treatment),
                    **row,
                }
            )
    return pd.DataFrame(rows)



def metric_unit(metric: str) -> str:
    """Unit of a scans-table metric from its name: ``pct_*`` in % of lung volume, ``*_ml`` in mL, else ``""``."""
    if metric.startswith("pct_"):
        return "% of lung volume"
    return "mL" if metric.endswith("_ml") else ""


def metric_label(metric: str) -> str:
    """Label of a scans-table metric (:data:`IMAGING_ENDPOINTS`, :data:`BASELINE_IMAGING`, else the name)."""
    return IMAGING_ENDPOINTS.get(metric) or BASELINE_IMAGING.get(metric) or metric
