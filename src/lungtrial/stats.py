"""Exploratory comparison of two trial arms: Table 1, outcomes, imaging change, mixed models, survival.

All functions take the tidy tables written by the clinical stage (see :mod:`lungtrial.clinical`) as pandas
DataFrames and return tidy DataFrames, one row per comparison, ready to be written as CSV. Arm names are never
hard-coded: the reference (control) and treatment arm names are passed in, and every difference is
``treatment - reference``. A comparison is not tested when either arm has fewer subjects with data than
``min_per_arm``; the ``note`` column then says why. All p values are two-sided and unadjusted (exploratory).

Censored lab values (``censored`` is ``"<"`` or ``">"``, ``value`` holds the limit): medians and rank tests use
the limit itself (ranks are unaffected for values below the lowest or above the highest measured value) and the
number of censored values is reported; the mixed models substitute ``limit / 2`` for ``"<"`` and the limit for
``">"``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lungtrial.errors import InputError
from lungtrial.wfutil import atomic_path

logger = logging.getLogger(__name__)

BINARY_OUTCOMES: dict[str, str] = {
    "mechanical_ventilation": "Mechanical ventilation",
    "oxygen_support": "Oxygen support",
    "fever": "Fever",
    "cough": "Cough",
    "dyspnoea": "Dyspnoea",
    "infusion_adverse_event": "Infusion-related adverse event",
    "any_adverse_event": "Any adverse event",
}
"""Binary outcome columns (``any_adverse_event`` is derived from the adverse-events table) and their labels."""

CONTINUOUS_OUTCOMES: dict[str, str] = {
    "length_of_stay_days": "Length of stay, days",
    "days_to_discharge": "Days from day 0 to discharge (discharged subjects)",
    "days_to_symptom_resolution": "Days to symptom resolution (resolved subjects)",
}
"""Continuous outcome columns of the subjects table and their labels."""

DISCHARGE_LABS: tuple[str, ...] = ("igg", "igm")
"""Analytes compared at discharge (each subject's last value)."""

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

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def check_arms(subjects: pd.DataFrame, reference: str, treatment: str, source: str = "subjects table") -> None:
    """Raise :class:`~lungtrial.errors.InputError` when the configured arms are not both in ``subjects``."""
    found = sorted(subjects["arm"].dropna().astype(str).unique())
    missing = [arm for arm in (reference, treatment) if arm not in found]
    if reference == treatment or missing:
        raise InputError(
            f"{source}: column arm: expected the configured arms stats.reference_arm={reference!r} and "
            f"stats.treatment_arm={treatment!r} (two different arms), found {found}"
        )


def write_csv(frame: pd.DataFrame, path: str) -> None:
    """Write a result table as CSV atomically (never half-written under its final name)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def as_bool(values: pd.Series) -> pd.Series:
    """Booleans from a column that may hold bools, 0/1 or the strings ``true``/``false``; missing stays NA."""
    if values.dtype == bool:
        return values.astype("boolean")

    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return pd.NA
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return bool(v)
        text = str(v).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return pd.NA if text == "" else False
        raise ValueError(f"column {values.name!r}: expected true/false, got {v!r}")

    return values.map(one).astype("boolean")


NO_LEVELS = {"none", "no", "false", "0", "n", "f"}
"""Texts meaning "not present" in a column of levels (compared in lower case)."""


def any_level(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """Booleans from a yes/no column (:func:`as_bool`) or, for a column of levels, "any level but none".

    Returns the booleans (missing stays NA) and the levels counted as present (empty for a yes/no column).
    """
    try:
        return as_bool(values), []
    except ValueError:
        text = values.astype("string").str.strip()
        present = ~text.str.lower().isin(NO_LEVELS)
        levels = sorted(text[present.fillna(False) & text.notna()].unique())
        return present.where(text.notna(), pd.NA).astype("boolean"), [str(v) for v in levels]


def fmt_num(x: float) -> str:
    """A number with about three significant figures, never in exponent notation."""
    if x is None or not np.isfinite(x):
        return "NA"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, first and third quartile (linear interpolation) of the finite values; NaNs when none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return (float(med), float(q1), float(q3))


def _fmt_median_iqr(values: Sequence[float]) -> str:
    med, q1, q3 = median_iqr(values)
    if not np.isfinite(med):
        return "NA"
    return f"{fmt_num(med)} ({fmt_num(q1)}, {fmt_num(q3)})"


def _mwu_null_counts(m: int, n: int) -> np.ndarray:
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


def hodges_lehmann(
    x: Sequence[float], y: Sequence[float], confidence: float = 0.95, exact_max: int = 50
) -> tuple[float, float, float, float]:
    """Hodges-Lehmann shift estimate ``x - y`` and its distribution-free confidence interval (Moses).

    The estimate is the median of all ``m * n`` pairwise differences ``x_i - y_j``. The interval runs from
    the k-th smallest to the k-th largest difference, where ``k - 1`` is the largest Mann-Whitney U whose
    lower-tail probability does not exceed ``(1 - confidence) / 2``; ``k`` is at least 1 (R's
    ``wilcox.test(conf.int=TRUE)`` rule). The null distribution of U is exact (no ties) when both samples
    have fewer than ``exact_max`` values, else the normal approximation without tie correction.

    Parameters
    ----------
    x, y : sequence of float
        The two samples (e.g. treatment, reference), in any unit; non-finite values are dropped.
    confidence : float
        Requested two-sided confidence level.
    exact_max : int
        Sample size from which the normal approximation is used.

    Returns
    -------
    estimate, low, high : float
        In the unit of ``x`` and ``y``; NaN when a sample is empty.
    achieved : float
        The interval's actual coverage under H0 (at least ``confidence`` unless the samples are so small
        that even the widest interval, the range of the differences, covers less).
    """
    xv = np.asarray(x, dtype=float)
    yv = np.asarray(y, dtype=float)
    xv = xv[np.isfinite(xv)]
    yv = yv[np.isfinite(yv)]
    m, n = xv.size, yv.size
    if m == 0 or n == 0:
        return (math.nan, math.nan, math.nan, math.nan)
    diffs = np.sort(np.subtract.outer(xv, yv).ravel())
    mn = m * n
    estimate = float(np.median(diffs))
    half = (1.0 - confidence) / 2.0
    if m < exact_max and n < exact_max:
        counts = _mwu_null_counts(m, n)
        cdf = np.cumsum(counts) / counts.sum()
        q = int(np.searchsorted(cdf, half, side="left"))  # smallest q with P(U <= q) >= half
        k = max(q, 1)
        achieved = 1.0 - 2.0 * float(cdf[k - 1])
    else:
        sd = math.sqrt(mn * (m + n + 1) / 12.0)
        z = sps.norm.ppf(1.0 - half)
        k = max(int(math.floor(mn / 2.0 - z * sd)), 1)
        achieved = 1.0 - 2.0 * float(sps.norm.cdf((k - 0.5 - mn / 2.0) / sd))
    return (estimate, float(diffs[k - 1]), float(diffs[mn - k]), achieved)


def _too_few(n_ref: int, n_trt: int, reference: str, treatment: str, min_per_arm: int) -> str:
    small = [f"{arm} has n={n}" for arm, n in ((reference, n_ref), (treatment, n_trt)) if n < min_per_arm]
    if not small:
        return ""
    return "not tested: " + ", ".join(small) + f" with data (fewer than min_per_arm={min_per_arm})"


def compare_continuous(
    reference_values: Sequence[float],
    treatment_values: Sequence[float],
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> dict[str, object]:
    """Median (IQR) per arm, two-sided Mann-Whitney U and Hodges-Lehmann difference ``treatment - reference``.

    Returns a flat dict (one table row): ``n_reference, n_treatment, median_*, q1_*, q3_*, summary_*,
    u_statistic`` (U of the treatment arm), ``p_value, hl_difference, hl_ci_low, hl_ci_high, hl_ci_level,
    test, note``. The test and the difference are NaN, with a ``note``, when an arm has fewer than
    ``min_per_arm`` values.
    """
    ref = np.asarray(reference_values, dtype=float)
    trt = np.asarray(treatment_values, dtype=float)
    ref = ref[np.isfinite(ref)]
    trt = trt[np.isfinite(trt)]
    row: dict[str, object] = {"n_reference": ref.size, "n_treatment": trt.size}
    for key, v in (("reference", ref), ("treatment", trt)):
        med, q1, q3 = median_iqr(v)
        row |= {f"median_{key}": med, f"q1_{key}": q1, f"q3_{key}": q3, f"summary_{key}": _fmt_median_iqr(v)}
    row |= {
        "u_statistic": math.nan,
        "p_value": math.nan,
        "hl_difference": math.nan,
        "hl_ci_low": math.nan,
        "hl_ci_high": math.nan,
        "hl_ci_level": math.nan,
        "test": "Mann-Whitney U (two-sided); Hodges-Lehmann difference with Moses CI",
        "note": _too_few(ref.size, trt.size, reference, treatment, min_per_arm),
    }
    if row["note"]:
        return row
    res = sps.mannwhitneyu(trt, ref, alternative="two-sided", method="auto")
    est, lo, hi, level = hodges_lehmann(trt, ref, confidence=confidence)
    row |= {
        "u_statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "hl_difference": est,
        "hl_ci_low": lo,
        "hl_ci_high": hi,
        "hl_ci_level": level,
    }
    if level < confidence - 1e-9:
        row["note"] = f"samples too small for a {confidence:.0%} interval; range of differences shown"
    return row


def compare_binary(
    reference_values: Sequence[bool],
    treatment_values: Sequence[bool],
    reference: str,
    treatment: str,
    min_per_arm: int,
) -> dict[str, object]:
    """Events n/N per arm and two-sided Fisher's exact test (odds ratio treatment vs reference).

    Missing values are left out of N. Returns one table row as a dict: ``events_*, n_*, summary_*,
    odds_ratio, p_value, test, note``.
    """
    ref = pd.Series(reference_values, dtype="boolean").dropna().astype(bool)
    trt = pd.Series(treatment_values, dtype="boolean").dropna().astype(bool)
    row: dict[str, object] = {}
    for key, v in (("reference", ref), ("treatment", trt)):
        k, n = int(v.sum()), int(v.size)
        pct = f" ({100.0 * k / n:.0f}%)" if n else ""
        row |= {f"events_{key}": k, f"n_{key}": n, f"summary_{key}": f"{k}/{n}{pct}"}
    row |= {
        "odds_ratio": math.nan,
        "p_value": math.nan,
        "test": "Fisher's exact (two-sided)",
        "note": _too_few(len(ref), len(trt), reference, treatment, min_per_arm),
    }
    if row["note"]:
        return row
    table = [
        [row["events_treatment"], row["n_treatment"] - row["events_treatment"]],
        [row["events_reference"], row["n_reference"] - row["events_reference"]],
    ]
    res = sps.fisher_exact(table, alternative="two-sided")
    row |= {"odds_ratio": float(res.statistic), "p_value": float(res.pvalue)}
    return row


def _header(reference: str, treatment: str) -> dict[str, str]:
    return {"reference_arm": reference, "treatment_arm": treatment}


def binary_outcomes(
    subjects: pd.DataFrame,
    adverse_events: pd.DataFrame | None,
    reference: str,
    treatment: str,
    min_per_arm: int,
) -> pd.DataFrame:
    """One row per binary outcome of :data:`BINARY_OUTCOMES` with n/N per arm and Fisher's exact test.

    ``any_adverse_event`` is true for subjects with at least one row in ``adverse_events`` (when that table
    is ``None`` the row says the adverse events were not provided). A text column with levels (e.g.
    ``oxygen_support``: none, low-flow, high-flow) counts as "any" level other than none (:func:`any_level`);
    ``note`` lists the levels counted. Outcome columns missing from ``subjects`` are skipped.
    """
    subj = subjects.copy()
    rows = []
    for col, label in BINARY_OUTCOMES.items():
        if col == "any_adverse_event":
            if adverse_events is None:
                rows.append(
                    {
                        "outcome": col,
                        "label": label,
                        **_header(reference, treatment),
                        "note": "not available: no adverse-events table",
                    }
                )
                continue
            with_ae = set(adverse_events["subject_id"].astype(str))
            subj[col] = subj["subject_id"].astype(str).isin(with_ae)
        elif col not in subj.columns:
            continue
        values, levels = any_level(subj[col])
        row = compare_binary(
            values[subj["arm"].astype(str) == reference],
            values[subj["arm"].astype(str) == treatment],
            reference,
            treatment,
            min_per_arm,
        )
        if levels:
            row["note"] = "; ".join(s for s in (f"any of: {', '.join(levels)}", row["note"]) if s)
        rows.append({"outcome": col, "label": label, **_header(reference, treatment), **row})
    out = pd.DataFrame(rows)
    counts = [c for c in ("events_reference", "n_reference", "events_treatment", "n_treatment") if c in out]
    return out.astype({c: "Int64" for c in counts})


def last_lab_value(labs: pd.DataFrame, analyte: str) -> pd.DataFrame:
    """Each subject's last (latest ``datetime``) value of one analyte: columns subject_id, arm, value, censored."""
    sel = labs.loc[(labs["analyte"] == analyte) & labs["value"].notna()]
    sel = sel.sort_values(["subject_id", "datetime"]).groupby("subject_id").tail(1)
    return sel[["subject_id", "arm", "value", "censored"]].reset_index(drop=True)


def continuous_outcomes(
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per continuous outcome: median (IQR) per arm, Mann-Whitney U, Hodges-Lehmann difference.

    Times to discharge and to symptom resolution include only subjects with the event (``discharged`` /
    ``symptom_resolved`` true); censored subjects are counted in ``note`` and analysed by Kaplan-Meier
    (:func:`survival`). IgG and IgM "at discharge" are each subject's last value; censored values count
    at their limit and are counted in ``note``.
    """
    rows = []
    event_col = {"days_to_discharge": "discharged", "days_to_symptom_resolution": "symptom_resolved"}
    for col, label in CONTINUOUS_OUTCOMES.items():
        if col not in subjects.columns:
            continue
        data = subjects
        extra = ""
        if col in event_col and event_col[col] in subjects.columns:
            keep = as_bool(subjects[event_col[col]]).fillna(False).to_numpy(dtype=bool)
            if (~keep).any():
                extra = f"{int((~keep).sum())} censored subject(s) left out (see Kaplan-Meier)"
            data = subjects.loc[keep]
        values = pd.to_numeric(data[col], errors="coerce")
        row = compare_continuous(
            values[data["arm"].astype(str) == reference],
            values[data["arm"].astype(str) == treatment],
            reference,
            treatment,
            min_per_arm,
            confidence,
        )
        row["note"] = "; ".join(s for s in (row["note"], extra) if s)
        rows.append({"outcome": col, "label": label, "unit": "days", **_header(reference, treatment), **row})
    for analyte in DISCHARGE_LABS:
        last = last_lab_value(labs, analyte)
        if last.empty:
            continue
        sel = labs.loc[labs["analyte"] == analyte]
        name = str(sel["analyte_label"].iloc[0]) if "analyte_label" in sel else analyte
        unit = str(sel["unit"].iloc[0]) if "unit" in sel else ""
        row = compare_continuous(
            last.loc[last["arm"].astype(str) == reference, "value"],
            last.loc[last["arm"].astype(str) == treatment, "value"],
            reference,
            treatment,
            min_per_arm,
            confidence,
        )
        n_cens = int((last["censored"].fillna("").astype(str) != "").sum())
        extra = f"{n_cens} censored value(s) counted at the limit" if n_cens else ""
        row["note"] = "; ".join(s for s in (row["note"], extra) if s)
        rows.append(
            {
                "outcome": f"{analyte}_at_discharge",
                "label": f"{name} at discharge (last value)",
                "unit": unit,
                **_header(reference, treatment),
                **row,
            }
        )
    return pd.DataFrame(rows)


def baseline_values(frame: pd.DataFrame, columns: Sequence[str], baseline_visit: str = "baseline") -> pd.DataFrame:
    """Per subject, the baseline-visit row closest to day 0 (``study_day``), restricted to ``columns``.

    ``frame`` needs ``subject_id, arm, visit, study_day``; scans with a ``status`` other than ``"ok"`` are
    ignored. Returns one row per subject: subject_id, arm and ``columns``.
    """
    sel = frame.loc[frame["visit"].astype(str) == baseline_visit]
    if "status" in sel.columns:
        sel = sel.loc[sel["status"] == "ok"]
    sel = sel.assign(_dist=pd.to_numeric(sel["study_day"], errors="coerce").abs())
    sel = sel.sort_values(["subject_id", "_dist"]).drop_duplicates("subject_id")
    return sel[["subject_id", "arm", *columns]].reset_index(drop=True)


def baseline_labs(labs: pd.DataFrame, baseline_visit: str = "baseline") -> pd.DataFrame:
    """Per subject and analyte, the baseline-visit lab value closest to day 0.

    Returns columns subject_id, arm, analyte, analyte_label, unit, value, censored.
    """
    sel = labs.loc[(labs["visit"].astype(str) == baseline_visit) & labs["value"].notna()]
    sel = sel.assign(_dist=pd.to_numeric(sel["study_day"], errors="coerce").abs())
    sel = sel.sort_values(["subject_id", "analyte", "_dist"]).drop_duplicates(["subject_id", "analyte"])
    return sel[["subject_id", "arm", "analyte", "analyte_label", "unit", "value", "censored"]].reset_index(drop=True)


def table1(
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    scans: pd.DataFrame,
    arms: Sequence[str],
    baseline_visit: str = "baseline",
) -> pd.DataFrame:
    """Baseline characteristics by arm ("Table 1"), descriptive only (no tests).

    Rows: number of subjects; age, median (Q1, Q3); sex and severity, n (%) of those with a value; each
    baseline lab, median (Q1, Q3) with the number censored; baseline imaging metrics of
    :data:`BASELINE_IMAGING`, median (Q1, Q3). Columns:
    ``section, variable, statistic`` and one column per arm (in the order of ``arms``) plus ``all``.
    Missing values are left out; a cell reads ``median (Q1, Q3) [n=k]`` when k is below the arm's size.
    """
    arms = list(arms)
    groups = {arm: subjects.loc[subjects["arm"].astype(str) == arm, "subject_id"].astype(str) for arm in arms}
    groups["all"] = subjects.loc[subjects["arm"].astype(str).isin(arms), "subject_id"].astype(str)
    sizes = {k: len(v) for k, v in groups.items()}
    rows: list[dict[str, object]] = [
        {"section": "Subjects", "variable": "Subjects", "statistic": "n", **{k: str(n) for k, n in sizes.items()}}
    ]

    def cont(section: str, variable: str, data: pd.DataFrame, col: str, extra_col: str | None = None) -> None:
        row: dict[str, object] = {"section": section, "variable": variable, "statistic": "median (Q1, Q3)"}
        for key, ids in groups.items():
            d = data.loc[data["subject_id"].astype(str).isin(set(ids))]
            v = pd.to_numeric(d[col], errors="coerce").dropna()
            cell = _fmt_median_iqr(v)
            if len(v) < sizes[key]:
                cell += f" [n={len(v)}]"
            if extra_col is not None:
                k = int((d.loc[v.index, extra_col].fillna("").astype(str) != "").sum())
                if k:
                    cell += f" ({k} censored)"
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
    base = baseline_labs(labs, baseline_visit)
    for _, d in base.groupby("analyte", sort=True):
        label = f"{d['analyte_label'].iloc[0]}, {d['unit'].iloc[0]}"
        cont("Baseline labs", label, d, "value", extra_col="censored")
    img_cols = [c for c in BASELINE_IMAGING if c in scans.columns]
    img = baseline_values(scans, img_cols, baseline_visit)
    for col in img_cols:
        cont("Baseline imaging", BASELINE_IMAGING[col], img, col)
    return pd.DataFrame(rows)


def change_from_baseline(scans: pd.DataFrame, metrics: Sequence[str], visits: Sequence[str]) -> pd.DataFrame:
    """Change of imaging metrics from baseline to each later nominal visit, per subject.

    ``visits`` lists the nominal visits in order, the first being baseline. Only measured scans (status
    ``"ok"``) labelled with a visit count; the clinical stage labels at most one scan per subject and visit
    (should there be several, the one closest to day 0 is baseline and the latest one counts for a later
    visit). Returns long form: subject_id, arm, visit, metric, baseline, value, change (``value - baseline``,
    in the metric's unit, e.g. percentage points).
    """
    visits = list(visits)
    base = baseline_values(scans, metrics, visits[0]).set_index("subject_id")
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


def censored_for_model(values: pd.Series, censored: pd.Series) -> pd.Series:
    """Lab values for modelling: ``limit / 2`` where censored ``"<"``, the limit where ``">"``, else the value."""
    out = pd.to_numeric(values, errors="coerce").astype(float)
    below = censored.fillna("").astype(str) == "<"
    return out.where(~below, out / 2.0)


def is_skewed(values: Sequence[float], threshold: float = 1.0) -> bool:
    """True when all values are positive and their sample skewness exceeds ``threshold`` (log scale is used)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size >= 3 and np.all(v > 0) and sps.skew(v) > threshold)


OPTIMIZERS: tuple[str, ...] = ("bfgs", "lbfgs", "powell", "nm")
"""MixedLM optimisers tried in turn until one converges with a positive-definite Hessian."""

_TERMS = {
    "Intercept": "reference arm at day 0",
    "study_day": "slope per day, reference arm",
    "treated": "treatment - reference at day 0",
    "study_day:treated": "slope difference per day, treatment - reference",
}


def mixed_model(
    data: pd.DataFrame,
    outcome: str,
    reference: str,
    treatment: str,
    min_per_arm: int,
    log: bool = False,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Linear mixed model ``y ~ study_day * arm`` with a random intercept per subject (statsmodels MixedLM, REML).

    ``data`` has columns subject_id, arm, study_day (days) and ``y``; only the two named arms are used
    (``treated`` = 1 for the treatment arm). With ``log`` true, ``y`` is replaced by its natural log and the
    estimates are on the log scale (exp(slope) is a ratio per day). Returns one row per fixed-effect term
    (``term, meaning, estimate, ci_low, ci_high, p_value``) with ``outcome, transform, n_obs, n_subjects,
    converged, note, random_intercept_var, residual_var``. The optimisers of :data:`OPTIMIZERS` are tried in
    turn (``note`` names the one used when the first failed). When the model cannot be fitted (too few
    subjects, no optimiser converged, singular matrix) a single row with ``converged`` false and the reason in
    ``note``.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    d = data.loc[data["arm"].astype(str).isin([reference, treatment]), ["subject_id", "arm", "study_day", "y"]]
    d = d.dropna()
    if log:
        d = d.loc[d["y"] > 0].assign(y=lambda f: np.log(f["y"]))
    d = d.assign(treated=(d["arm"].astype(str) == treatment).astype(float), study_day=d["study_day"].astype(float))
    n_ref = d.loc[d["treated"] == 0, "subject_id"].nunique()
    n_trt = d.loc[d["treated"] == 1, "subject_id"].nunique()
    base = {
        "outcome": outcome,
        "transform": "log" if log else "none",
        "n_obs": len(d),
        "n_subjects": n_ref + n_trt,
        **_header(reference, treatment),
    }

    def failed(reason: str) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    **base,
                    "term": "",
                    "meaning": "",
                    "estimate": math.nan,
                    "ci_low": math.nan,
                    "ci_high": math.nan,
                    "p_value": math.nan,
                    "converged": False,
                    "note": reason,
                }
            ]
        )

    note = _too_few(n_ref, n_trt, reference, treatment, min_per_arm)
    if note:
        return failed(note)
    if d["y"].nunique() < 2:
        return failed("not estimated: all values are equal")
    try:
        model = MixedLM.from_formula("y ~ study_day * treated", groups="subject_id", data=d)
    except ValueError as exc:
        return failed(f"not estimated: {type(exc).__name__}: {exc}")
    attempts = []
    for method in OPTIMIZERS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError) as exc:
                attempts.append(f"{method}: {type(exc).__name__}: {exc}")
                continue
        messages = [str(w.message) for w in caught if issubclass(w.category, (ConvergenceWarning, UserWarning))]
        boundary = any("boundary" in m for m in messages)
        # A non-positive-definite Hessian is expected when the random-intercept variance sits at zero (the
        # boundary): the fixed effects and their standard errors are then those of ordinary least squares.
        problems = list(
            dict.fromkeys(m for m in messages if "failed" in m or ("not positive definite" in m and not boundary))
        )
        if res.converged and not problems and np.all(np.isfinite(res.bse_fe)):
            break
        attempts.append(f"{method}: " + ("; ".join(problems) or "did not converge"))
    else:
        return failed("not estimated: " + " | ".join(attempts))
    fe = res.fe_params
    ci = res.conf_int(alpha=1.0 - confidence).loc[fe.index]
    if attempts:
        logger.info("%s: fitted with %s after %s", outcome, method, " | ".join(attempts))
    notes = [f"fitted with {method} ({', '.join(a.partition(':')[0] for a in attempts)} failed)"] if attempts else []
    if boundary:
        notes.append("random-intercept variance on the boundary (near zero): fixed effects as in least squares")
    variances = {"random_intercept_var": float(res.cov_re.iloc[0, 0]), "residual_var": float(res.scale)}
    rows = [
        {
            **base,
            "term": term,
            "meaning": _TERMS.get(term, term),
            "estimate": float(fe[term]),
            "ci_low": float(ci.loc[term, 0]),
            "ci_high": float(ci.loc[term, 1]),
            "p_value": float(res.pvalues[term]),
            "converged": True,
            "note": "; ".join(notes),
            **variances,
        }
        for term in fe.index
    ]
    return pd.DataFrame(rows)


def mixed_models(
    scans: pd.DataFrame,
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mixed models of each :data:`IMAGING_ENDPOINTS` metric (untransformed, %) and of each lab analyte.

    Labs use :func:`censored_for_model` and are modelled on the log scale when :func:`is_skewed` says so.
    Returns the rows of :func:`mixed_model` for all outcomes, with ``label`` and ``unit``.
    """
    out = []
    ok = scans.loc[scans["status"] == "ok"] if "status" in scans.columns else scans
    for metric, label in IMAGING_ENDPOINTS.items():
        if metric not in ok.columns:
            continue
        d = ok[["subject_id", "arm", "study_day"]].assign(y=pd.to_numeric(ok[metric], errors="coerce"))
        out.append(
            mixed_model(d, metric, reference, treatment, min_per_arm, False, confidence).assign(label=label, unit="%")
        )
    for analyte, sel in labs.groupby("analyte", sort=True):
        y = censored_for_model(sel["value"], sel["censored"])
        d = sel[["subject_id", "arm", "study_day"]].assign(y=y)
        log = is_skewed(d["y"])
        out.append(
            mixed_model(d, str(analyte), reference, treatment, min_per_arm, log, confidence).assign(
                label=str(sel["analyte_label"].iloc[0]), unit=str(sel["unit"].iloc[0])
            )
        )
    first = [
        "outcome",
        "label",
        "unit",
        "transform",
        "term",
        "meaning",
        "estimate",
        "ci_low",
        "ci_high",
        "p_value",
        "n_obs",
        "n_subjects",
        "converged",
        "note",
    ]
    if not out:
        return pd.DataFrame(columns=first)
    df = pd.concat(out, ignore_index=True)
    return df[first + [c for c in df.columns if c not in first]]


SURVIVAL_ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "symptom_resolution": ("Time to symptom resolution", "days_to_symptom_resolution", "symptom_resolved"),
    "discharge": ("Time to discharge", "days_to_discharge", "discharged"),
}
"""Time-to-event endpoints: name -> (label, duration column in days, event column)."""


def survival_data(subjects: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    """Durations (days) and event flags of one :data:`SURVIVAL_ENDPOINTS` endpoint: subject_id, arm, duration, event.

    Subjects without a duration are dropped (they cannot be placed on the time axis).
    """
    _, dur_col, ev_col = SURVIVAL_ENDPOINTS[endpoint]
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
    """Two-sample log-rank test (lifelines): chi-square statistic (1 df) and p value."""
    from lifelines.statistics import logrank_test

    res = logrank_test(
        np.asarray(durations_a, float),
        np.asarray(durations_b, float),
        event_observed_A=np.asarray(events_a, bool),
        event_observed_B=np.asarray(events_b, bool),
    )
    return float(res.test_statistic), float(res.p_value)


def survival(
    subjects: pd.DataFrame, reference: str, treatment: str, min_per_arm: int, confidence: float = 0.95
) -> pd.DataFrame:
    """Kaplan-Meier median time per arm and the log-rank test, one row per :data:`SURVIVAL_ENDPOINTS` endpoint.

    Columns: endpoint, label, reference_arm, treatment_arm, n_* and events_* per arm, median_* (days; NaN
    when the curve does not fall to 0.5), chi2, p_value, test, note.
    """
    from lifelines import KaplanMeierFitter

    rows = []
    for endpoint, (label, dur_col, ev_col) in SURVIVAL_ENDPOINTS.items():
        if dur_col not in subjects.columns or ev_col not in subjects.columns:
            continue
        d = survival_data(subjects, endpoint)
        row: dict[str, object] = {"endpoint": endpoint, "label": label, **_header(reference, treatment)}
        parts = {}
        for key, arm in (("reference", reference), ("treatment", treatment)):
            a = d.loc[d["arm"] == arm]
            parts[key] = a
            row[f"n_{key}"] = len(a)
            row[f"events_{key}"] = int(a["event"].sum())
            med = math.nan
            if len(a):
                kmf = KaplanMeierFitter(alpha=1.0 - confidence).fit(a["duration"], a["event"])
                med = float(kmf.median_survival_time_)
            row[f"median_{key}"] = med if np.isfinite(med) else math.nan
        row |= {
            "chi2": math.nan,
            "p_value": math.nan,
            "test": "log-rank (1 df)",
            "note": _too_few(row["n_reference"], row["n_treatment"], reference, treatment, min_per_arm),
        }
        if not row["note"]:
            row["chi2"], row["p_value"] = logrank(
                parts["reference"]["duration"],
                parts["reference"]["event"],
                parts["treatment"]["duration"],
                parts["treatment"]["event"],
            )
        rows.append(row)
    return pd.DataFrame(rows)
