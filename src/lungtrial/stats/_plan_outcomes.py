"""The analysis plan's imaging, continuous and time-to-event outcomes, each compared by arm as the plan declares.

:func:`imaging_outcomes` compares the change from baseline of a scans-table metric (ANCOVA or ranks) or a
change-map endpoint (ranks); :func:`continuous_outcomes` compares subjects-sheet columns and labs (ranks) or a
lab's change from baseline (ANCOVA); :func:`survival_outcomes` compares the times to event (Kaplan-Meier median,
log-rank test, Cox hazard ratio). Each row carries the outcome's role, family and label; the p values are raw
(:func:`lungtrial.stats.run_plan` adjusts them within families).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from lungtrial.errors import InputError
from lungtrial.stats._ancova import ancova

if TYPE_CHECKING:
    from lungtrial.stats._plan import Outcome, Plan


def _role_columns(o: Outcome) -> dict[str, object]:
    return {"role": o.role, "family": o.family, "outcome": o.name, "label": o.label}


def _changes(
    frame: pd.DataFrame,
    value_col: str,
    visit: str,
    plan: Plan,
    by: str = "subject_id",
    timed: bool = False,
    carry: Sequence[str] = (),
) -> pd.DataFrame:
    """Per subject: baseline (flagged when from outside the window), the value at ``visit`` and the change.

    Columns named in ``carry`` come along: the baseline row's as ``baseline_<column>``, the visit's as ``<column>``.
    """
    from lungtrial.stats import _baseline

    carry = list(carry)
    base = _baseline.baseline_values(
        frame,
        [value_col, *carry],
        plan.baseline_visit,
        lookback_days=plan.baseline_lookback_days,
        first_dose_day=plan.first_dose_day if timed else None,
    ).rename(columns={value_col: "baseline", **{c: f"baseline_{c}" for c in carry}})
    ok = frame.loc[frame["status"] == "ok"] if "status" in frame.columns else frame
    at = ok.loc[ok["visit"].astype(str) == visit, [by, value_col, *carry]].drop_duplicates(by, keep="last")
    d = base.merge(at.rename(columns={value_col: "value"}), on=by, how="inner")
    d["baseline"] = pd.to_numeric(d["baseline"], errors="coerce")
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d.dropna(subset=["baseline", "value"])
    return d.assign(change=d["value"] - d["baseline"])


def _censoring_note(labs: pd.DataFrame, o: Outcome, plan: Plan) -> str:
    """Censored values among the baseline and visit values a lab change compares (before the rule is applied,
    so values the rule ``exclude`` leaves out are counted), and whether the rule can change their ranks."""
    from lungtrial.stats._censoring import censoring_changes_ranks

    sel = labs.loc[(labs["analyte"] == o.analyte) & labs["value"].notna()]
    sel = sel.assign(status="ok", censored=sel["censored"].fillna("").astype(str).str.strip())
    d = _changes(sel, "value", o.at, plan, timed=True, carry=("censored",))
    values = pd.concat([d["baseline"], d["value"]], ignore_index=True)
    flags = pd.concat([d["baseline_censored"], d["censored"]], ignore_index=True)
    n_cens = int(flags.isin(["<", ">"]).sum())
    if not n_cens:
        return ""
    note = f"{n_cens} censored value(s), rule {plan.censoring}"
    if censoring_changes_ranks(values, flags):
        note += " (the rule can change the ranks)"
    return note


def _flag_note(d: pd.DataFrame) -> str:
    flagged = d.loc[d["baseline_flag"].astype(str) != "", "baseline_flag"] if "baseline_flag" in d else []
    if not len(flagged):
        return ""
    return f"{len(flagged)} baseline value(s) from before the baseline window (" + "; ".join(
        f"{s}: {f}" for s, f in zip(d.loc[flagged.index, "subject_id"], flagged)
    ) + ")"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _change_rows(
    o: Outcome,
    d: pd.DataFrame,
    visit: str,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float,
) -> dict[str, object]:
    """One comparison of the change from baseline at ``visit`` (ANCOVA or Mann-Whitney / Hodges-Lehmann)."""
    from lungtrial.stats import _compare

    log = o.scale == "log"
    if o.analysis == "ancova":
        res = ancova(d, reference, treatment, min_per_arm, confidence, log=log)
        res["note"] = _join(res["note"], _flag_note(d))
        return {"visit": visit, "unit": o.unit, "scale": o.scale, **res}
    ref = d.loc[d["arm"].astype(str) == reference, "change"]
    trt = d.loc[d["arm"].astype(str) == treatment, "change"]
    res = _compare.compare_continuous(ref, trt, reference, treatment, min_per_arm, confidence)
    res["note"] = _join(str(res.get("note", "")), _flag_note(d))
    return {"visit": visit, "unit": o.unit, "scale": o.scale, **res}


def _change_map_pairs(
    change: pd.DataFrame, scans: pd.DataFrame, column: str, visit: str, plan: Plan
) -> tuple[pd.DataFrame, str]:
    """The pairs of the change table that count for a change-map endpoint at ``visit`` and a note on the others.

    A pair counts when its follow-up is the subject's scan of ``visit`` (as the scans table labels it, at most one
    per subject; without a scan_id column, the change table's own visit label, the latest pair per subject), it
    was compared (status ``ok``: registration passed its QC, both scans measured) and its baseline CT is the
    subject's baseline scan (:func:`lungtrial.stats.baseline_values`, with the plan's look-back: a change map
    against a later scan, when the baseline CT was excluded, is no change from baseline). Returns the counted
    pairs as ``subject_id, arm, change`` (the endpoint's value; with ``baseline_flag`` when the scans table names
    scans) and the note naming what was left out.
    """
    from lungtrial.stats import _baseline

    pairs = change.assign(visit=change["visit"].fillna("").astype(str), status=change["status"].astype(str))
    if {"scan_id", "visit"} <= set(scans.columns):
        at_visit = set(scans.loc[scans["visit"].astype(str) == visit, "scan_id"].astype(str))
        pairs = pairs.loc[pairs["followup_scan"].astype(str).isin(at_visit)]
    else:
        pairs = pairs.loc[pairs["visit"] == visit].sort_values(["subject_id", "study_day"])
        pairs = pairs.drop_duplicates("subject_id", keep="last")
    notes = []
    left = pairs.loc[pairs["status"] != "ok"]
    if len(left):
        notes.append(f"{len(left)} pair(s) not compared left out ("
                     + "; ".join(f"{s}: {st}" for s, st in zip(left["subject_id"], left["status"])) + ")")
    pairs = pairs.loc[pairs["status"] == "ok"]
    if "scan_id" in scans.columns:
        base = _baseline.baseline_values(scans, ["scan_id"], plan.baseline_visit,
                                        lookback_days=plan.baseline_lookback_days)
        base = base.rename(columns={"scan_id": "baseline_scan_expected"})[
            ["subject_id", "baseline_scan_expected", "baseline_flag"]]
        pairs = pairs.merge(base, on="subject_id", how="left")
        other = pairs["baseline_scan"].astype(str) != pairs["baseline_scan_expected"].astype(str)
        if other.any():
            notes.append(f"{int(other.sum())} pair(s) against a CT other than the subject's baseline scan left out ("
                         + "; ".join(f"{s}: {b}" for s, b in zip(pairs.loc[other, "subject_id"],
                                                                 pairs.loc[other, "baseline_scan"])) + ")")
        pairs = pairs.loc[~other]
    values = pd.to_numeric(pairs[column], errors="coerce")
    missing = int(values.isna().sum())
    if missing:
        notes.append(f"{missing} pair(s) without a value left out")
    pairs = pairs.assign(value=values).loc[values.notna()]
    keep = [c for c in ("subject_id", "arm", "value", "baseline_flag") if c in pairs.columns]
    return pairs[keep].rename(columns={"value": "change"}), _join(*notes)


def imaging_outcomes(
    plan: Plan,
    scans: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    change: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Change from baseline of each imaging outcome at each of its visits, compared by arm (ANCOVA or ranks).

    Only measured scans (``status == "ok"``) count; the baseline scan is the last one before the first dose
    (:func:`lungtrial.stats.baseline_values`). A change-map endpoint (``source: change``) takes its values from
    ``change`` (the change table, :func:`lungtrial.imaging.change.change_table`), the pairs chosen as
    :func:`_change_map_pairs` says, and compares them by Mann-Whitney U and the Hodges-Lehmann shift. One row per
    outcome and visit: ``source`` (``scans`` or ``change``) and the columns of :func:`ancova` or
    :func:`lungtrial.stats.compare_continuous`.
    """
    rows = []
    for o in plan.of_type("imaging"):
        if o.source == "change":
            if change is None:
                raise InputError(f"config {o.key} ({o.name}): a change-map endpoint needs the change table "
                                 "(results/imaging/change.csv; registration.enabled: true)")
            for visit in o.visits:
                d, note = _change_map_pairs(change, scans, o.column, visit, plan)
                row = _change_rows(o, d, visit, reference, treatment, min_per_arm, confidence)
                row["note"] = _join(str(row.get("note", "")), note)
                rows.append({**_role_columns(o), "source": "change", "analysis": o.analysis, **row})
            continue
        if o.column not in scans.columns:
            raise InputError(f"scans table: column {o.column!r} named by config {o.key} ({o.name}) is missing")
        for visit in o.visits:
            d = _changes(scans, o.column, visit, plan)
            rows.append({**_role_columns(o), "source": "scans", "analysis": o.analysis,
                         **_change_rows(o, d, visit, reference, treatment, min_per_arm, confidence)})
    return pd.DataFrame(rows)


def _lab_frame(labs: pd.DataFrame, analyte: str, censoring: str) -> pd.DataFrame:
    """One analyte's values, censored ones replaced by the plan's rule (:func:`lungtrial.stats.censor_values`)."""
    from lungtrial.stats._censoring import censor_values

    sel = labs.loc[(labs["analyte"] == analyte) & labs["value"].notna()]
    return sel.assign(status="ok", value=censor_values(sel["value"], sel["censored"], censoring))


def continuous_outcomes(
    plan: Plan,
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Continuous and count outcomes: ranks (:func:`lungtrial.stats.continuous_outcomes`) or lab ANCOVA rows."""
    from lungtrial.stats import _compare

    rank = [o for o in plan.of_type("continuous", "count") if o.analysis == "mann-whitney"]
    out = _compare.continuous_outcomes(
        subjects, labs, rank, reference, treatment, min_per_arm, confidence, censoring=plan.censoring
    )
    rows = []
    for o in plan.of_type("continuous"):
        if o.analysis != "ancova":
            continue
        d = _changes(_lab_frame(labs, o.analyte, plan.censoring), "value", o.at, plan, timed=True)
        row = _change_rows(o, d, o.at, reference, treatment, min_per_arm, confidence)
        row["note"] = _join(str(row.get("note", "") or ""), _censoring_note(labs, o, plan))
        rows.append({**_role_columns(o), "analysis": "ancova", **row})
    if rows:
        out = pd.concat([out, pd.DataFrame(rows)], ignore_index=True)
    return out


def survival_outcomes(
    plan: Plan,
    subjects: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Time-to-event outcomes: Kaplan-Meier median per arm, log-rank test, Cox hazard ratio; all subjects count.

    Subjects without the event are censored at their duration (for the clinical stage's derived outcomes, the
    last contact); no comparison is restricted to subjects with the event. Columns: role, family, outcome, label,
    unit, reference_arm, treatment_arm and those of :func:`lungtrial.stats.compare_survival` (its ``hr_note``
    joined to ``note``).
    """
    from lungtrial.stats import _compare, _survival_tables

    rows = []
    for o in plan.of_type("time-to-event"):
        row = _survival_tables.compare_survival(
            subjects[o.column], _compare.as_bool(subjects[o.event]).fillna(False), subjects["arm"], reference,
            treatment, min_per_arm, confidence,
        )
        note = _join(str(row.pop("note")), str(row.pop("hr_note")))
        rows.append({**_role_columns(o), "unit": o.unit or "days", "reference_arm": reference,
                     "treatment_arm": treatment, **row, "note": note})
    return pd.DataFrame(rows)
