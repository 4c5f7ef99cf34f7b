"""The analysis plan's competing risk of death: cumulative incidence of each time-to-event outcome with death
as a competing event, per arm (Aalen-Johansen), and Gray's test between the arms (:func:`competing_risk_outcomes`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lungtrial.errors import InputError
from lungtrial.stats._plan_outcomes import _join

if TYPE_CHECKING:
    from lungtrial.stats._plan import Plan


COMPETING_COLUMNS = [
    "outcome", "label", "arm", "time", "n_at_risk", "n_event", "n_death", "n_censored", "incidence", "ci_low",
    "ci_high", "death_incidence", "confidence", "gray_statistic", "gray_p_value", "note",
]
"""Columns of :func:`competing_risk_outcomes`."""


def competing_risk_outcomes(
    plan: Plan,
    subjects: pd.DataFrame,
    reference: str,
    treatment: str,
    confidence: float = 0.95,
    min_per_arm: int = 1,
) -> pd.DataFrame:
    """Cumulative incidence of each time-to-event outcome with death as a competing event, per arm (Aalen-Johansen),
    and Gray's test of equal incidence in the two arms.

    A subject who dies before the event can no longer have it: Kaplan-Meier, which treats the death as censoring,
    estimates the incidence in a world without deaths and overstates it. The Aalen-Johansen estimator
    (:func:`lungtrial.stats.cumulative_incidence`) gives the probability of having had the event by each day
    with death competing. Each subject's first event counts: the outcome's event at its duration when it came on
    or before the day of death (``plan.death_column``), else death at the day of death, else censoring at the
    duration. Gray's test (:func:`lungtrial.stats.gray_test`, as ``cmprsk::cuminc``) compares the arms' cumulative
    incidence of the event with death competing: a supportive analysis of the outcome's log-rank test, not in its
    multiplicity family (unadjusted).

    Parameters
    ----------
    plan : Plan
        Its time-to-event outcomes and ``death_column``.
    subjects : DataFrame
        The subjects table: ``subject_id, arm``, the outcomes' duration and event columns and the death column
        (study day of death, days; empty: alive at the last contact).
    reference, treatment : str
        The arms, reported in this order.
    confidence : float
        Level of the pointwise interval of the incidence (lifelines: log-log transform).
    min_per_arm : int
        No test when an arm has fewer subjects with a duration.

    Returns
    -------
    DataFrame
        :data:`COMPETING_COLUMNS`: one row per outcome, arm and time (day 0 and every day on which an event, a
        death or a censoring happens): numbers at risk (duration >= time) and with each outcome on that day,
        ``incidence`` of the event with ``ci_low``, ``ci_high`` and ``death_incidence`` (proportions 0-1),
        ``gray_statistic`` (chi-square, 1 df) and ``gray_p_value`` (the same on every row of the outcome; NaN
        without events or with too few subjects, ``note`` says why), and a ``note`` (e.g. no deaths in the arm: the
        incidence then equals 1 - Kaplan-Meier). Empty when the plan names no death column.

    Raises
    ------
    InputError
        A subject whose event is recorded after the day of death (names the subject and the columns).
    """
    from lungtrial.stats import _compare
    from lungtrial.stats._survival import cumulative_incidence, gray_test

    if not plan.death_column:
        return pd.DataFrame(columns=COMPETING_COLUMNS)
    death = pd.to_numeric(subjects[plan.death_column], errors="coerce").astype(float)
    rows = []
    for o in plan.of_type("time-to-event"):
        d = pd.DataFrame(
            {
                "subject_id": subjects["subject_id"].astype(str),
                "arm": subjects["arm"].astype(str),
                "duration": pd.to_numeric(subjects[o.column], errors="coerce").astype(float),
                "event": _compare.as_bool(subjects[o.event]).fillna(False).astype(bool),
                "death": death,
            }
        )
        d = d.loc[d["arm"].isin([reference, treatment])]
        late = d.loc[d["event"] & (d["death"] < d["duration"]), "subject_id"].tolist()
        if late:
            raise InputError(
                f"subjects table: subject(s) {', '.join(late)}: {o.event} is true at {o.column} after the day of "
                f"death ({plan.death_column}); expected the event on or before the day of death (config {o.key})"
            )
        died_first = d["death"].notna() & ~(d["event"] & (d["duration"] <= d["death"]))
        d = d.assign(
            time=d["duration"].where(~died_first, d["death"]),
            code=np.where(died_first, 2, np.where(d["event"], 1, 0)),
        )
        missing = int(d["time"].isna().sum())
        d = d.dropna(subset=["time"])
        too_few = _compare._too_few(int((d["arm"] == reference).sum()), int((d["arm"] == treatment).sum()), reference,
                                    treatment, min_per_arm)
        gray = {"statistic": math.nan, "p_value": math.nan}
        if not too_few:
            gray = gray_test(d["time"], d["code"], d["arm"], event_of_interest=1)
        test = {"gray_statistic": gray["statistic"], "gray_p_value": gray["p_value"]}
        for arm in (reference, treatment):
            a = d.loc[d["arm"] == arm]
            notes = [f"{missing} subject(s) without a duration left out"] if missing else []
            notes += [too_few.replace("not tested", "Gray's test not done")] if too_few else []
            if a.empty:
                rows.append({"outcome": o.name, "label": o.label, "arm": arm, "confidence": confidence, **test,
                             "note": _join(*notes, "no subjects with a duration")})
                continue
            deaths = int((a["code"] == 2).sum())
            if not deaths:
                notes.append("no deaths in this arm: the incidence equals 1 - Kaplan-Meier")
            cif = cumulative_incidence(a["time"], a["code"], 1, confidence)
            death_cif = (
                cumulative_incidence(a["time"], a["code"], 2, confidence).set_index("time")["incidence"]
                if deaths
                else pd.Series(0.0, index=cif["time"])
            )
            for _, r in cif.iterrows():
                when = float(r["time"])
                on_day = a["time"] == when
                rows.append(
                    {
                        "outcome": o.name,
                        "label": o.label,
                        "arm": arm,
                        "time": when,
                        "n_at_risk": int((a["time"] >= when).sum()),
                        "n_event": int((on_day & (a["code"] == 1)).sum()),
                        "n_death": int((on_day & (a["code"] == 2)).sum()),
                        "n_censored": int((on_day & (a["code"] == 0)).sum()),
                        "incidence": float(r["incidence"]),
                        "ci_low": float(r["ci_low"]),
                        "ci_high": float(r["ci_high"]),
                        "death_incidence": float(death_cif.loc[when]),
                        "confidence": confidence,
                        **test,
                        "note": _join(*notes),
                    }
                )
    return pd.DataFrame(rows, columns=COMPETING_COLUMNS)
