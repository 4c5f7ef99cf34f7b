"""The result tables of a two-arm comparison: Table 1, binary and continuous outcomes, change from baseline, mixed
models, Kaplan-Meier and log-rank.

All functions take the tidy tables written by the clinical stage (see :mod:`lungtrial.clinical`) as pandas
DataFrames and return tidy DataFrames, one row per comparison, ready to be written as CSV. Arm names are never
hard-coded: the reference (control) and treatment arm names are passed in, and every difference is
``treatment - reference``. A comparison is not tested when either arm has fewer subjects with data than
``min_per_arm``; the ``note`` column then says why. All p values are two-sided. The p values of one table row are
raw: the analysis plan (:func:`lungtrial.stats.run_plan`) adjusts them for multiplicity within each outcome family
and reports the raw and the adjusted p value side by side; the mixed models are exploratory and unadjusted.

The methods agree with R's defaults (golden values from R in ``tests/fixtures/r``): Mann-Whitney and
Hodges-Lehmann as ``wilcox.test`` (:mod:`lungtrial.stats._nonparametric`), odds ratio as ``fisher.test``
(:mod:`lungtrial.stats._fisher`), risk difference with Newcombe's interval (its formula in R), Kaplan-Meier
median and Cox model as survival (:mod:`lungtrial.stats._survival`), mixed models as lmerTest, mmrm or nlme
(:mod:`lungtrial.stats._mixed`).

Censored lab values (``censored`` is ``"<"`` or ``">"``, ``value`` holds the limit) become numbers by one rule,
the same for models, tests and plots (:mod:`lungtrial.stats._censoring`); the number censored is reported, and
whether the rule can change their ranks.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats as sps

from lungtrial.errors import InputError
from lungtrial.io import write_csv  # noqa: F401 - result tables are written by lungtrial.io
from lungtrial.stats._censoring import CENSOR_RULES, DEFAULT_CENSOR_RULE, censor_values, censoring_changes_ranks
from lungtrial.stats._fisher import fisher_odds_ratio
from lungtrial.stats._mixed import COLUMNS as _MIXED_MODEL_COLUMNS
from lungtrial.stats._mixed import mixed_model
from lungtrial.stats._nonparametric import hodges_lehmann, mann_whitney
from lungtrial.stats._survival import cox_hazard_ratio, km_median

if TYPE_CHECKING:
    from lungtrial.stats._plan import Outcome

logger = logging.getLogger(__name__)

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

    Test and interval as R's ``wilcox.test(conf.int=TRUE)`` with its defaults
    (:mod:`lungtrial.stats._nonparametric`): exact when both arms have fewer than 50 values and there are no ties,
    else the normal approximation with tie and continuity correction; ``test`` names which.

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
    u, p, method = mann_whitney(trt, ref)
    est, lo, hi, level = hodges_lehmann(trt, ref, confidence=confidence)
    interval = "Moses CI" if method == "exact" else "CI from the normal approximation"
    row |= {
        "test": f"Mann-Whitney U (two-sided, {method}); Hodges-Lehmann difference with {interval}",
        "u_statistic": u,
        "p_value": p,
        "hl_difference": est,
        "hl_ci_low": lo,
        "hl_ci_high": hi,
        "hl_ci_level": level,
    }
    if level < confidence - 1e-9:
        row["note"] = f"samples too small for a {confidence:.0%} interval; range of differences shown"
    elif np.isfinite(est) and not np.isfinite(lo):
        row["note"] = "all values equal: no interval"
    return row


def risk_difference(
    events_treatment: int, n_treatment: int, events_reference: int, n_reference: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Risk difference treatment - reference with Newcombe's hybrid score interval.

    Newcombe (1998, Stat Med 17:873-890, method 10), built from the two arms' Wilson score intervals
    (statsmodels ``confint_proportions_2indep(method="newcomb")``): it stays within [-1, 1], is not degenerate
    with zero events, and keeps close to its nominal coverage in small arms, where the Wald interval does not.

    Returns
    -------
    difference, low, high : float
        Proportions (0-1; multiply by 100 for percentage points); NaN when an arm has no subjects.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep

    if n_treatment == 0 or n_reference == 0:
        return (math.nan, math.nan, math.nan)
    low, high = confint_proportions_2indep(
        events_treatment, n_treatment, events_reference, n_reference, method="newcomb", compare="diff",
        alpha=1.0 - confidence,
    )
    return (events_treatment / n_treatment - events_reference / n_reference, float(low), float(high))


def compare_binary(
    reference_values: Sequence[bool],
    treatment_values: Sequence[bool],
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> dict[str, object]:
    """Events n/N per arm, Fisher's exact test, the odds ratio and the risk difference (treatment vs reference).

    As R reports them: the two-sided p value, conditional maximum-likelihood odds ratio and its exact
    interval of ``fisher.test`` (:func:`lungtrial.stats.fisher_odds_ratio`), and the risk
    difference with Newcombe's hybrid score interval (:func:`risk_difference`). With
    a zero cell the odds ratio is 0 or infinite (an interval bound 0 or infinite) and ``note`` says so; with
    no events (or only events) in both arms it is not defined (NaN).

    Missing values are left out of N. Returns one table row as a dict: ``events_*, n_*, summary_*,
    odds_ratio, or_ci_low, or_ci_high, risk_difference, rd_ci_low, rd_ci_high`` (proportions, 0-1),
    ``p_value, ci_level, test, note``.
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
        "or_ci_low": math.nan,
        "or_ci_high": math.nan,
        "risk_difference": math.nan,
        "rd_ci_low": math.nan,
        "rd_ci_high": math.nan,
        "p_value": math.nan,
        "ci_level": confidence,
        "test": (
            "Fisher's exact (two-sided); conditional ML odds ratio with exact CI (R fisher.test); "
            "risk difference with Newcombe's hybrid score CI"
        ),
        "note": _too_few(len(ref), len(trt), reference, treatment, min_per_arm),
    }
    if row["note"]:
        return row
    et, nt, er, nr = (int(row[k]) for k in ("events_treatment", "n_treatment", "events_reference", "n_reference"))
    table = [[et, nt - et], [er, nr - er]]
    p_value = float(sps.fisher_exact(table, alternative="two-sided").pvalue)
    rd, rd_lo, rd_hi = risk_difference(et, nt, er, nr, confidence)
    row |= {"p_value": p_value, "risk_difference": rd, "rd_ci_low": rd_lo, "rd_ci_high": rd_hi}
    if (et + er == 0) or (et + er == nt + nr):
        why = "no events in either arm" if et + er == 0 else "events in all subjects"
        row["note"] = f"odds ratio not defined: {why}"
        return row
    odds, low, high = fisher_odds_ratio(table, confidence)
    row |= {"odds_ratio": odds, "or_ci_low": low, "or_ci_high": high}
    if 0 in (et, nt - et, er, nr - er):  # then the conditional MLE is 0 or infinite
        which = "0, its lower limit 0" if row["odds_ratio"] == 0 else "infinite, its upper limit unbounded"
        row["note"] = f"a zero cell: the conditional ML odds ratio is {which}"
    return row


def _header(reference: str, treatment: str) -> dict[str, str]:
    return {"reference_arm": reference, "treatment_arm": treatment}


def event_indicator(values: pd.Series, level: str | None = None, source: str = "subjects table") -> pd.Series:
    """Event (true/false) per subject from a yes/no column, or from a column of levels when ``level`` is given.

    Parameters
    ----------
    values : Series
        The column (booleans, 0/1, ``true``/``false`` text, or text levels such as ``low-flow``).
    level : str, optional
        The event is the column taking this level (compared without regard to case or surrounding blanks).
    source : str
        Named in the error message.

    Returns
    -------
    Series of nullable bool
        Missing values stay missing (left out of the denominator).

    Raises
    ------
    InputError
        Without ``level``, a value that is not true/false (names the column and the value).
    """
    if level is not None:
        text = values.astype("string").str.strip().str.lower()
        return (text == str(level).strip().lower()).where(text.notna(), pd.NA).astype("boolean")
    try:
        return as_bool(values)
    except ValueError:
        bad = sorted({str(v) for v in values.dropna() if str(v).strip().lower() not in _TRUE | _FALSE})
        raise InputError(
            f"{source}: column {values.name!r}: value(s) {', '.join(map(repr, bad))} (expected true or false; "
            "for a column of levels declare the level in the analysis plan)"
        ) from None


def binary_outcomes(
    subjects: pd.DataFrame,
    adverse_events: pd.DataFrame | None,
    outcomes: Sequence[Outcome],
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per binary outcome of the analysis plan with n/N per arm and Fisher's exact test.

    Parameters
    ----------
    subjects : DataFrame
        The subjects table (``subject_id``, ``arm`` and the outcome columns).
    adverse_events : DataFrame or None
        The adverse-events table; None when the trial gave none (outcomes from it are then reported as not
        available).
    outcomes : sequence of :class:`lungtrial.stats.Outcome`
        Binary outcomes: a yes/no column, a column taking one ``level`` (e.g. each oxygen-support level), or
        ``source == "adverse_events"`` (at least one adverse event).
    reference, treatment : str
        Arm names.
    min_per_arm : int
        No test when an arm has fewer subjects with a value.
    confidence : float
        Level of the odds ratio's and the risk difference's intervals.

    Returns
    -------
    DataFrame
        ``outcome, label, reference_arm, treatment_arm`` and the columns of :func:`compare_binary`; counts as
        nullable integers.
    """
    subj = subjects.copy()
    arm = subj["arm"].astype(str)
    rows = []
    for o in outcomes:
        head = {"outcome": o.name, "label": o.label, **_header(reference, treatment)}
        if o.source == "adverse_events":
            if adverse_events is None:
                rows.append({**head, "note": "not available: no adverse-events table"})
                continue
            with_ae = set(adverse_events["subject_id"].astype(str))
            values = subj["subject_id"].astype(str).isin(with_ae).astype("boolean")
        else:
            values = event_indicator(subj[o.column], o.level)
        row = compare_binary(
            values[arm == reference], values[arm == treatment], reference, treatment, min_per_arm, confidence
        )
        rows.append({**head, **row})
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
    outcomes: Sequence[Outcome],
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    censoring: str = "half_limit",
) -> pd.DataFrame:
    """One row per continuous or count outcome: median (IQR) per arm, Mann-Whitney U, Hodges-Lehmann shift.

    Parameters
    ----------
    subjects : DataFrame
        The subjects table; every subject with a value counts (no outcome is restricted to subjects with an
        event: times to an event are time-to-event outcomes).
    labs : DataFrame
        The labs table; a lab outcome ``at`` ``discharge`` is each subject's last value, ``at`` a visit the
        value labelled with that visit. Censored values are replaced by ``censoring``
        (:func:`lungtrial.stats.censor_values`), counted in ``note``, and ``note`` says when the rule can
        change the ranks (:func:`lungtrial.stats.censoring_changes_ranks`).
    outcomes : sequence of :class:`lungtrial.stats.Outcome`
        Continuous or count outcomes (a subjects column, or ``analyte`` and ``at``).
    reference, treatment : str
        Arm names.
    min_per_arm : int
        No test when an arm has fewer subjects with a value.
    confidence : float
        Level of the Hodges-Lehmann interval.
    censoring : str
        Rule for censored lab values (:data:`lungtrial.stats.CENSOR_RULES`; config ``analysis.censoring``).

    Returns
    -------
    DataFrame
        ``outcome, label, unit, scale, visit, reference_arm, treatment_arm`` and the columns of
        :func:`compare_continuous`. On the log scale (prespecified, ``scale == "log"``) the Hodges-Lehmann shift
        of the log values is reported back-transformed as a ratio treatment / reference (``hl_difference``,
        ``hl_ci_low``, ``hl_ci_high``); the p value is the same on either scale.
    """
    rows = []
    for o in outcomes:
        extra = ""
        if o.source == "labs":
            sel = labs.loc[(labs["analyte"] == o.analyte) & labs["value"].notna()]
            if o.at == "discharge":
                data = last_lab_value(labs, o.analyte)
            else:
                data = sel.loc[sel["visit"].astype(str) == o.at, ["subject_id", "arm", "value", "censored"]]
            n_cens = int((data["censored"].fillna("").astype(str) != "").sum())
            extra = f"{n_cens} censored value(s), rule {censoring}" if n_cens else ""
            if n_cens and censoring_changes_ranks(data["value"], data["censored"]):
                extra += " (the rule can change the ranks)"
            values = censor_values(data["value"], data["censored"], censoring)
            unit = o.unit or (str(sel["unit"].iloc[0]) if len(sel) else "")
        else:
            data = subjects
            values = pd.to_numeric(data[o.column], errors="coerce")
            unit = o.unit
        arm = data["arm"].astype(str)
        log = o.scale == "log"
        if log:
            positive = values > 0
            if (values.notna() & ~positive).any():
                extra = "; ".join(s for s in (extra, f"{int((values.notna() & ~positive).sum())} value(s) <= 0 "
                                              "left out of the log scale") if s)
            values = np.log(values.where(positive))
        row = compare_continuous(values[arm == reference], values[arm == treatment], reference, treatment,
                                 min_per_arm, confidence)
        if log:  # summaries of the values themselves; the shift of the logs back-transformed to a ratio
            for key, name in (("reference", reference), ("treatment", treatment)):
                v = np.exp(values[arm == name].dropna())
                row[f"median_{key}"], row[f"q1_{key}"], row[f"q3_{key}"] = median_iqr(v)
                row[f"summary_{key}"] = _fmt_median_iqr(v)
            for key in ("hl_difference", "hl_ci_low", "hl_ci_high"):
                row[key] = math.exp(row[key])
        row["note"] = "; ".join(s for s in (row["note"], extra) if s)
        rows.append(
            {
                "outcome": o.name,
                "label": o.label,
                "unit": unit,
                "scale": o.scale,
                "visit": "" if o.source != "labs" or o.at == "discharge" else o.at,
                "analysis": "mann-whitney",
                **_header(reference, treatment),
                **row,
            }
        )
    return pd.DataFrame(rows)


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


def censored_for_model(values: pd.Series, censored: pd.Series, rule: str = DEFAULT_CENSOR_RULE) -> pd.Series:
    """Lab values for modelling by one censoring rule (:func:`lungtrial.stats.censor_values`; default
    :data:`lungtrial.stats.DEFAULT_CENSOR_RULE`: ``limit / 2`` below a limit, the limit above one)."""
    return censor_values(values, censored, rule)


def is_skewed(values: Sequence[float], threshold: float = 1.0) -> bool:
    """True when all values are positive and their sample skewness exceeds ``threshold`` (log scale is used)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size >= 3 and np.all(v > 0) and sps.skew(v) > threshold)


def metric_unit(metric: str) -> str:
    """Unit of a scans-table metric from its name: ``pct_*`` in % of lung volume, ``*_ml`` in mL, else ``""``."""
    if metric.startswith("pct_"):
        return "% of lung volume"
    return "mL" if metric.endswith("_ml") else ""


def metric_label(metric: str) -> str:
    """Label of a scans-table metric (:data:`IMAGING_ENDPOINTS`, :data:`BASELINE_IMAGING`, else the name)."""
    return IMAGING_ENDPOINTS.get(metric) or BASELINE_IMAGING.get(metric) or metric


MIXED_COLUMNS = [_MIXED_MODEL_COLUMNS[0], "label", "unit", *_MIXED_MODEL_COLUMNS[1:]]
"""Leading columns of :func:`mixed_models`' table."""


def mixed_models(
    scans: pd.DataFrame,
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    *,
    time: str = "continuous",
    random_slope: bool = False,
    df_method: str = "satterthwaite",
    censor_rule: str = DEFAULT_CENSOR_RULE,
    scales: dict[str, str] | None = None,
    visits: Sequence[str] | None = None,
    imaging: Mapping[str, str] | None = None,
    covariance: str | Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Mixed models (:func:`lungtrial.stats.mixed_model`) of each imaging metric in ``imaging`` and each lab.

    Parameters
    ----------
    scans, labs : pandas.DataFrame
        The clinical stage's scans table (measured scans, status "ok", are used) and labs table (long form with
        ``value``, ``censored``, ``analyte``, ``analyte_label``, ``unit``, ``study_day``, ``visit``).
    reference, treatment, min_per_arm, confidence
        As for :func:`lungtrial.stats.mixed_model`.
    time, random_slope, df_method, visits
        The model (:func:`lungtrial.stats.mixed_model`): ``time="visit"`` (visit factor, arm by visit) or
        ``"continuous"`` (study day), random slope or not, ``"satterthwaite"`` or ``"between-within"`` df.
    censor_rule : str
        How censored lab values enter (:data:`lungtrial.stats.CENSOR_RULES`); ``note`` counts them and says
        when the rule can change their ranks (:func:`lungtrial.stats.censoring_changes_ranks`).
    scales : dict, optional
        Prespecified scale per outcome (metric or analyte name): ``"log"`` or ``"linear"``. An outcome not in it:
        imaging metrics linear; labs on the log scale when all values are positive and skewed (:func:`is_skewed`),
        which ``note`` then calls chosen from the data.
    imaging : mapping, optional
        Scans-table metric -> label of the imaging outcomes modelled (default :data:`IMAGING_ENDPOINTS`; the
        workflow passes the analysis plan's imaging metrics). Percentages (``pct_*``) are in % of lung volume,
        ``*_ml`` volumes in mL.
    covariance : str or mapping, optional
        The model's covariance (:data:`lungtrial.stats.COVARIANCES`), for every outcome or per outcome (metric or
        analyte name; the key ``default`` for the others, :meth:`lungtrial.stats.Plan.model_covariance`). None:
        from ``random_slope``.

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`lungtrial.stats.mixed_model` for all outcomes, columns :data:`MIXED_COLUMNS` first,
        then ``censor_rule`` and ``n_censored`` (labs) and the variance components.
    """
    scales = dict(scales or {})
    kw = {"time": time, "random_slope": random_slope, "df_method": df_method, "visits": visits}

    def cov(name: str) -> str | None:
        if covariance is None or isinstance(covariance, str):
            return covariance
        return covariance.get(name, covariance.get("default"))
    out = []
    ok = scans.loc[scans["status"] == "ok"] if "status" in scans.columns else scans
    for metric, label in (IMAGING_ENDPOINTS if imaging is None else imaging).items():
        if metric not in ok.columns:
            continue
        cols = ["subject_id", "arm", "study_day"] + (["visit"] if "visit" in ok.columns else [])
        d = ok[cols].assign(y=pd.to_numeric(ok[metric], errors="coerce"))
        log = scales.get(metric, "linear") == "log"
        res = mixed_model(d, metric, reference, treatment, min_per_arm, log, confidence, covariance=cov(metric), **kw)
        out.append(res.assign(label=label, unit=metric_unit(metric), censor_rule="", n_censored=0))
    for analyte, sel in labs.groupby("analyte", sort=True):
        y = censor_values(sel["value"], sel["censored"], censor_rule)
        cols = ["subject_id", "arm", "study_day"] + (["visit"] if "visit" in sel.columns else [])
        d = sel[cols].assign(y=y)
        chosen = ""
        if str(analyte) in scales:
            log = scales[str(analyte)] == "log"
        else:
            log = is_skewed(d["y"])
            chosen = "log scale chosen from the data (skewness > 1)" if log else ""
        res = mixed_model(
            d, str(analyte), reference, treatment, min_per_arm, log, confidence, covariance=cov(str(analyte)), **kw
        )
        n_cens = int(sel["censored"].fillna("").astype(str).str.strip().isin(["<", ">"]).sum())
        extra = [chosen] if chosen else []
        if n_cens:
            extra.append(f"{n_cens} censored value(s), rule {censor_rule}")
            if censoring_changes_ranks(sel["value"], sel["censored"]):
                extra.append("the censoring rule can change the ranks of the values")
        if extra:
            res["note"] = ["; ".join(x for x in (str(n), *extra) if x) for n in res["note"]]
        out.append(
            res.assign(
                label=str(sel["analyte_label"].iloc[0]),
                unit=str(sel["unit"].iloc[0]),
                censor_rule=censor_rule if n_cens else "",
                n_censored=n_cens,
            )
        )
    if not out:
        return pd.DataFrame(columns=MIXED_COLUMNS)
    df = pd.concat(out, ignore_index=True)
    return df[MIXED_COLUMNS + [c for c in df.columns if c not in MIXED_COLUMNS]]


def mixed_models_censoring_sensitivity(
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    rules: Sequence[str] = tuple(CENSOR_RULES),
    configured_rule: str = DEFAULT_CENSOR_RULE,
    **model: object,
) -> pd.DataFrame:
    """Sensitivity of the lab mixed models to the censoring rule: :func:`mixed_models` of every analyte with
    censored values rerun under each rule in ``rules`` (``model`` passes ``time``, ``random_slope``,
    ``df_method``, ``scales``, ``visits``, ``covariance``).

    An analyte without a scale in ``scales`` gets the one the data give under ``configured_rule`` (the analysis
    plan's; :func:`is_skewed`) for every rule, so that the rules are compared on one scale.

    Returns
    -------
    pandas.DataFrame
        ``censor_rule`` and the rows of :func:`mixed_models` for every rule; empty when nothing is censored.
    """
    flagged = labs["censored"].fillna("").astype(str).str.strip().isin(["<", ">"])
    analytes = sorted(labs.loc[flagged, "analyte"].astype(str).unique())
    if not analytes:
        return pd.DataFrame(columns=["censor_rule", *MIXED_COLUMNS])
    sel = labs.loc[labs["analyte"].astype(str).isin(analytes)]
    scales = dict(model.pop("scales", None) or {})
    for analyte, d in sel.groupby("analyte", sort=True):
        if str(analyte) not in scales:
            log = is_skewed(censor_values(d["value"], d["censored"], configured_rule))
            scales[str(analyte)] = "log" if log else "linear"
    empty_scans = pd.DataFrame(columns=["subject_id", "arm", "study_day", "status"])
    parts = []
    for rule in rules:
        res = mixed_models(
            empty_scans, sel, reference, treatment, min_per_arm, confidence, censor_rule=rule, scales=scales, **model
        )
        parts.append(res.assign(censor_rule=rule))
    out = pd.concat(parts, ignore_index=True)
    return out[["censor_rule", *[c for c in out.columns if c != "censor_rule"]]]


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
