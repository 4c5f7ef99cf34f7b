"""Running the analysis plan: :func:`run_plan` runs every declared comparison on the clinical stage's tables and
returns the result tables:

- ``primary``: the one primary endpoint (its row of ``outcomes`` with the model's details);
- ``outcomes``: one row per comparison, primary first, then secondary, then exploratory, with the raw p value and
  the p value adjusted within the outcome's multiplicity family side by side;
- ``binary``, ``continuous``, ``imaging_change``, ``survival``: the detailed tables by outcome type, with the same
  role, family and adjusted p columns;
- ``competing_risk`` (only when the plan names a death column, ``analysis.death_column``): the cumulative incidence
  of each time-to-event outcome with death as a competing event, per arm, and Gray's test between the arms
  (:func:`lungtrial.stats.competing_risk_outcomes`).

:func:`analysis_tables` gives those and Table 1, all the statistics tables of the workflow's ``stats_tables``
job.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from lungtrial.stats._baseline import table1
from lungtrial.stats._compare import check_arms
from lungtrial.stats._competing import competing_risk_outcomes
from lungtrial.stats._multiplicity import adjust_families
from lungtrial.stats._plan import ROLES, check_columns
from lungtrial.stats._plan_outcomes import _role_columns, continuous_outcomes, imaging_outcomes, survival_outcomes

if TYPE_CHECKING:
    from lungtrial.stats._plan import Outcome, Plan


_SUMMARY_COLUMNS = [
    "role", "family", "outcome", "label", "type", "visit", "unit", "scale", "test", "effect",
    "n_reference", "n_treatment", "summary_reference", "summary_treatment",
    "estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "adjustment", "note",
]


def _summary(o: Outcome, row: Mapping[str, object]) -> dict[str, object]:
    """The ``outcomes`` table row of one detailed result row."""
    if o.type == "binary":
        est = {"effect": "odds ratio, conditional ML (treatment vs reference)",
               "estimate": row.get("odds_ratio", math.nan), "ci_low": row.get("or_ci_low", math.nan),
               "ci_high": row.get("or_ci_high", math.nan)}
    elif o.type == "time-to-event":
        est = {"effect": "hazard ratio (Cox, treatment vs reference)", "estimate": row.get("hazard_ratio", math.nan),
               "ci_low": row.get("hr_ci_low", math.nan), "ci_high": row.get("hr_ci_high", math.nan)}
        summaries = {k: f"{row[f'events_{k}']}/{row[f'n_{k}']} events, median {stats_fmt(row[f'median_{k}'])} days"
                     for k in ("reference", "treatment")}
        est |= {f"summary_{k}": v for k, v in summaries.items()}
    elif "hl_difference" in row and not (isinstance(row.get("effect"), str) and row.get("effect")):
        ratio = o.scale == "log"
        est = {"effect": "Hodges-Lehmann " + ("ratio (treatment / reference)" if ratio else
                                              "shift (treatment - reference)"),
               "estimate": row.get("hl_difference"), "ci_low": row.get("hl_ci_low"), "ci_high": row.get("hl_ci_high")}
    else:
        est = {"effect": row.get("effect", ""), "estimate": row.get("estimate"), "ci_low": row.get("ci_low"),
               "ci_high": row.get("ci_high")}
        if "mean_change_reference" in row:
            what = "geometric mean of value / baseline" if o.scale == "log" else "mean change"
            est |= {f"summary_{k}": f"{what} {stats_fmt(row[f'mean_change_{k}'])} (n={row[f'n_{k}']})"
                    for k in ("reference", "treatment")}
    out = {"type": o.type, "visit": row.get("visit", ""), "unit": o.unit, "scale": o.scale, **row, **est}
    out.update(_role_columns(o))
    return {c: out.get(c, "") for c in _SUMMARY_COLUMNS if c not in ("p_adjusted", "adjustment")}


def stats_fmt(x: object) -> str:
    """A number for a summary cell (three significant figures), ``NA`` when missing."""
    from lungtrial.stats import _compare

    try:
        return _compare.fmt_num(float(x))
    except (TypeError, ValueError):
        return "NA"


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty or "role" not in table.columns:
        return table
    order = table["role"].map({r: i for i, r in enumerate(ROLES)})
    return table.assign(_o=order).sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)


def run_plan(
    plan: Plan,
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    scans: pd.DataFrame,
    adverse_events: pd.DataFrame | None,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    change: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every comparison of the plan, with multiplicity adjusted within families.

    Parameters
    ----------
    plan : Plan
        From :func:`load_plan`.
    subjects, labs, scans : DataFrame
        The clinical stage's tables (``results/tables``).
    adverse_events : DataFrame or None
        None when the trial gave no adverse-events sheet (outcomes from it are then reported as not available).
    reference, treatment : str
        Arms compared (treatment - reference, treatment / reference for ratios).
    min_per_arm : int
        No test where an arm has fewer subjects with data.
    confidence : float
        Level of every confidence interval.
    change : DataFrame, optional
        The change maps' table (``results/imaging/change.csv``), needed when the plan has change-map endpoints
        (:meth:`Plan.change_endpoints`).

    Returns
    -------
    dict of DataFrame
        ``primary``, ``outcomes``, ``binary``, ``continuous``, ``imaging_change``, ``survival`` (see the module
        docstring). Every table has ``role``, ``family``, ``p_value``, ``p_adjusted`` and ``adjustment``. When the
        plan names a death column also ``competing_risk`` (:func:`competing_risk_outcomes`; Gray's test, unadjusted).
    """
    from lungtrial.stats import _compare

    check_columns(plan, subjects, scans, change=change)
    detailed = {
        "binary": _compare.binary_outcomes(
            subjects, adverse_events, plan.of_type("binary"), reference, treatment, min_per_arm, confidence
        ),
        "continuous": continuous_outcomes(plan, subjects, labs, reference, treatment, min_per_arm, confidence),
        "imaging_change": imaging_outcomes(plan, scans, reference, treatment, min_per_arm, confidence, change),
        "survival": survival_outcomes(plan, subjects, reference, treatment, min_per_arm, confidence),
    }
    by_name = {o.name: o for o in plan.outcomes}
    summary_rows = []
    for name, table in detailed.items():
        for i, row in table.iterrows():
            summary_rows.append({**_summary(by_name[row["outcome"]], row.to_dict()), "_table": name, "_row": i})
    summary = pd.DataFrame(summary_rows, columns=[*_SUMMARY_COLUMNS, "_table", "_row"])
    summary = adjust_families(summary.drop(columns=["p_adjusted", "adjustment"]), plan)
    plan_order = {o.name: i for i, o in enumerate(plan.outcomes)}
    summary = summary.assign(_p=summary["outcome"].map(plan_order))
    summary = _ordered(summary.sort_values("_p", kind="stable")).drop(columns="_p")
    results: dict[str, pd.DataFrame] = {}
    for name, table in detailed.items():
        part = summary.loc[summary["_table"] == name].set_index("_row")
        if table.empty:
            table = pd.DataFrame(columns=["role", "family", "outcome", "label", "p_value", "p_adjusted", "adjustment",
                                          "note"])
        else:
            table = table.assign(
                role=part["role"], family=part["family"], p_adjusted=part["p_adjusted"], adjustment=part["adjustment"]
            )
            first = ["role", "family", "outcome", "label"]
            table = table[first + [c for c in table.columns if c not in first]]
        results[name] = _ordered(table)
    results["outcomes"] = summary[_SUMMARY_COLUMNS].reset_index(drop=True)
    results["primary"] = summary.loc[summary["role"] == "primary", _SUMMARY_COLUMNS].reset_index(drop=True)
    primary = plan.primary
    if primary is not None and len(results["primary"]):
        detail = detailed[summary.loc[summary["role"] == "primary", "_table"].iloc[0]]
        extra = detail.loc[detail["outcome"] == primary.name].drop(
            columns=[c for c in detail.columns if c in _SUMMARY_COLUMNS], errors="ignore"
        ).dropna(axis=1, how="all")
        results["primary"] = pd.concat([results["primary"], extra.reset_index(drop=True)], axis=1)
    if plan.death_column:
        results["competing_risk"] = competing_risk_outcomes(plan, subjects, reference, treatment, confidence,
                                                            min_per_arm)
    return results


def analysis_tables(
    plan: Plan,
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    scans: pd.DataFrame,
    adverse_events: pd.DataFrame | None,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    change: pd.DataFrame | None = None,
    source: str = "subjects table",
) -> dict[str, pd.DataFrame]:
    """The plan's comparisons (:func:`run_plan`) and Table 1 (:func:`lungtrial.stats.table1`) of one trial.

    Checks that the subjects table has both arms (:func:`lungtrial.stats.check_arms`), runs every comparison of
    the plan, and summarises the baseline by arm: the reference arm, the treatment arm, then any other arm in
    alphabetical order, with the plan's baseline visit, look-back, first-dose time and censoring rule.

    Parameters
    ----------
    plan : Plan
        From :func:`lungtrial.stats.load_plan`.
    subjects, labs, scans, adverse_events, reference, treatment, min_per_arm, confidence, change
        As for :func:`run_plan`.
    source : str
        Where the subjects table comes from (its path), named in the error when an arm is missing.

    Returns
    -------
    dict of DataFrame
        The tables of :func:`run_plan` and ``table1``.

    Raises
    ------
    InputError
        An arm missing from the subjects table, a column the plan names missing from a table.
    """
    check_arms(subjects, reference, treatment, source)
    arms = [reference, treatment, *sorted(set(subjects["arm"].astype(str)) - {reference, treatment})]
    tables = run_plan(plan, subjects, labs, scans, adverse_events, reference, treatment, min_per_arm, confidence,
                      change=change)
    tables["table1"] = table1(
        subjects, labs, scans, arms, plan.baseline_visit, plan.baseline_lookback_days, plan.first_dose_day,
        censoring=plan.censoring,
    )
    return tables
