"""Tests for lungtrial.stats._baseline's imaging change (and Table 1) on arms named with spaces and symbols."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lungtrial import stats

from stats_cases import REF, TRT


def test_table1_and_imaging_change():
    subj = pd.DataFrame(
        {
            "subject_id": list("ABCDEF"),
            "arm": [REF] * 3 + [TRT] * 3,
            "age": [30, 40, 50, 60, 70, 80],
            "sex": list("FMFMMM"),
        }
    )
    days = {"baseline": 0, "day7": 7}
    scans = pd.DataFrame(
        [
            {
                "subject_id": s,
                "arm": a,
                "visit": v,
                "study_day": d,
                "status": "ok",
                "pct_opacity": 10.0 + i - (d / 7) * (i + 1),
                "pct_consolidation": 2.0,
            }
            for i, (s, a) in enumerate(zip(subj["subject_id"], subj["arm"]))
            for v, d in days.items()
        ]
    )
    scans.loc[len(scans)] = {
        "subject_id": "A",
        "arm": REF,
        "visit": "day7",
        "study_day": 6,
        "status": "excluded",
        "pct_opacity": np.nan,
        "pct_consolidation": np.nan,
    }
    labs = pd.DataFrame(
        {
            "subject_id": list("ABCDEF"),
            "arm": subj["arm"],
            "visit": "baseline",
            "study_day": -0.5,  # noon the day before the first dose (midnight starting day 0 by default)
            "analyte": "crp",
            "analyte_label": "CRP",
            "unit": "mg/L",
            "value": [1, 2, 3, 4, 5, 6.0],
            "censored": ["<", "", "", "", "", ""],
        }
    )
    t1 = stats.table1(subj, labs, scans, [REF, TRT])
    assert t1.iloc[0][REF] == "3" and t1.iloc[0]["all"] == "6"
    age = t1.loc[t1["variable"] == "Age, years"].iloc[0]
    assert age[REF] == "40.0 (35.0, 45.0)"
    assert t1.loc[t1["variable"] == "Sex: M", TRT].iloc[0] == "3 (100%)"
    assert "(1 censored)" in t1.loc[t1["variable"] == "CRP, mg/L", REF].iloc[0]
    assert t1.loc[t1["variable"] == "CRP, mg/L", TRT].iloc[0] == "5.00 (4.50, 5.50)"
    # a value taken after the first dose is never baseline, even in the baseline window and labelled so
    after = labs.iloc[[3]].assign(study_day=0.5, value=100.0)
    t1 = stats.table1(subj, pd.concat([labs, after]), scans, [REF, TRT], first_dose_day=0.375)
    assert t1.loc[t1["variable"] == "CRP, mg/L", TRT].iloc[0] == "5.00 (4.50, 5.50)"
    ch = stats.imaging_change(scans, ["baseline", "day7"], REF, TRT, min_per_arm=3).set_index("endpoint")
    op = ch.loc["pct_opacity"]
    # change = -(i + 1): reference -1, -2, -3; treatment -4, -5, -6
    assert op["median_reference"] == -2 and op["median_treatment"] == -5
    assert op["hl_difference"] == -3
    assert ch.loc["pct_consolidation", "hl_difference"] == 0


def test_imaging_change_by_visit():
    arms = [REF] * 3 + [TRT] * 3
    scans = pd.DataFrame(
        [
            {
                "subject_id": s,
                "arm": a,
                "visit": v,
                "study_day": d,
                "status": "ok",
                "pct_opacity": 10.0 + i - (d / 7) * (i + 1),
                "pct_consolidation": 2.0,
            }
            for i, (s, a) in enumerate(zip("ABCDEF", arms))
            for v, d in {"baseline": 0, "day7": 7}.items()
        ]
    )
    ch = stats.imaging_change(scans, ["baseline", "day7"], REF, TRT, min_per_arm=3).set_index("endpoint")
    op = ch.loc["pct_opacity"]
    # change = -(i + 1): reference -1, -2, -3; treatment -4, -5, -6 (no ties: exact, as R)
    assert op["median_reference"] == -2 and op["median_treatment"] == -5 and op["hl_difference"] == -3
    assert "exact" in op["test"]
    cons = ch.loc["pct_consolidation"]  # no change anywhere: shift 0, no interval
    assert cons["hl_difference"] == 0 and math.isnan(cons["hl_ci_low"])
    assert cons["note"] == "all values equal: no interval"
