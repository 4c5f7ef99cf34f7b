"""Comparisons of two arms, one row per outcome: binary outcomes (events n/N, Fisher's exact test, odds ratio,
risk difference) and continuous outcomes (median (IQR), Mann-Whitney U, Hodges-Lehmann shift), and the small
helpers every result table shares (arm check, true/false columns, number formatting).

All functions take the tidy tables written by the clinical stage (see :mod:`lungtrial.clinical`) as pandas
DataFrames and return tidy DataFrames, one row per comparison, ready to be written as CSV. Arm names are never
hard-coded: the reference (control) and treatment arm names are passed in, and every difference is
``treatment - reference``. A comparison is not tested when either arm has fewer subjects with data than
``min_per_arm``; the ``note`` column then says why. All p values are two-sided. The p values of one table row are
raw: the analysis plan (:func:`lungtrial.stats.run_plan`) adjusts them for multiplicity within each outcome family
and reports the raw and the adjusted p value side by side.

The methods agree with R's defaults (golden values from R in ``tests/fixtures/r``): Mann-Whitney and
Hodges-Lehmann as ``wilcox.test`` (:mod:`lungtrial.stats._nonparametric`), odds ratio as ``fisher.test``
(:mod:`lungtrial.stats._fisher`), risk difference with Newcombe's interval (its formula in R).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats as sps

from lungtrial.errors import InputError
from lungtrial.stats._censoring import censor_values, censoring_changes_ranks
from lungtrial.stats._fisher import fisher_odds_ratio
from lungtrial.stats._nonparametric import hodges_lehmann, mann_whitney

if TYPE_CHECKING:
    from lungtrial.stats._plan import Outcome

logger = logging.getLogger(__name__)

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
