"""Tests for lungtrial.stats._plan_outcomes: a lab ANCOVA outcome notes its censored values; a change-map endpoint
(source: change) compared by visit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lungtrial.errors import InputError

from plan_cases import PRIMARY, REF, TRT, _censored_labs, plan_of


def test_lab_ancova_notes_its_censored_values():
    from lungtrial.stats._plan_outcomes import continuous_outcomes

    plan = plan_of(PRIMARY, {"name": "il6_change", "type": "continuous", "analyte": "il6", "at": "day7",
                             "analysis": "ancova", "label": "IL-6 change"}, censoring="limit")
    subjects = pd.DataFrame({"subject_id": list("abcdef"), "arm": [REF] * 3 + [TRT] * 3})
    out = continuous_outcomes(plan, subjects, _censored_labs(), REF, TRT, min_per_arm=2)
    row = out.set_index("outcome").loc["il6_change"]
    assert row["analysis"] == "ancova" and np.isfinite(row["p_value"])
    assert row["note"] == "2 censored value(s), rule limit"  # one limit below every measured value: ranks kept
    labs = _censored_labs()
    labs.loc[2, ["value", "censored"]] = [1.5, ""]  # a measured value under the limit: the rule can reorder them
    row = continuous_outcomes(plan, subjects, labs, REF, TRT, min_per_arm=2).set_index("outcome").loc["il6_change"]
    assert row["note"] == "2 censored value(s), rule limit (the rule can change the ranks)"


def test_change_endpoints_in_the_analysis_plan():
    """A change-map endpoint of the plan (source: change): the pairs of each visit compared by arm, pairs not
    compared or against a CT other than the baseline scan left out and named in the note."""
    from lungtrial import stats

    visits = {"baseline": [-3, 1], "day7": [5, 10], "day28": [24, 35]}
    plan = stats.load_plan(
        {"outcomes": [
            {"name": "opacity", "type": "imaging", "column": "pct_opacity", "label": "Opacity", "role": "primary",
             "visits": ["day28"]},
            {"name": "resolved", "type": "imaging", "source": "change", "column": "resolved_fraction",
             "label": "Resolved", "unit": "%", "family": "change_maps"},
        ]},
        visits,
    )
    assert plan.imaging_metrics() == ["pct_opacity"] and [o.name for o in plan.change_endpoints()] == ["resolved"]
    rng = np.random.default_rng(3)
    scans, pairs = [], []
    for i in range(1, 9):
        subject, arm = f"S{i}", ("drug" if i % 2 else "placebo")
        for day, visit in ((0, "baseline"), (7, "day7"), (28, "day28")):
            scans.append({"scan_id": f"{subject}-D{day}", "subject_id": subject, "arm": arm, "study_day": day,
                          "visit": visit, "status": "ok", "pct_opacity": rng.uniform(5, 20)})
            if day:
                pairs.append({"subject_id": subject, "arm": arm, "baseline_scan": f"{subject}-D0",
                              "followup_scan": f"{subject}-D{day}", "study_day": day, "visit": visit,
                              "resolved_fraction": (80.0 if arm == "drug" else 20.0) + i, "status": "ok"})
    scans, pairs = pd.DataFrame(scans), pd.DataFrame(pairs)
    pairs.loc[pairs["followup_scan"] == "S2-D7", ["status", "resolved_fraction"]] = ["failed", np.nan]
    scans.loc[scans["scan_id"] == "S3-D0", "status"] = "excluded"  # S3's change maps are against its day 7 CT
    pairs.loc[pairs["subject_id"] == "S3", "baseline_scan"] = "S3-D7"
    table = stats.imaging_outcomes(plan, scans, "placebo", "drug", 3, change=pairs).set_index(["outcome", "visit"])
    day7 = table.loc[("resolved", "day7")]
    assert (day7["source"], day7["analysis"], day7["n_reference"], day7["n_treatment"]) == (
        "change", "mann-whitney", 3, 3)
    assert "1 pair(s) not compared left out (S2: failed)" in day7["note"]
    assert "1 pair(s) against a CT other than the subject's baseline scan left out (S3: S3-D7)" in day7["note"]
    # drug S1, S5, S7: 81, 85, 87 against placebo S4, S6, S8: 24, 26, 28 (exact test, smallest p for 3 and 3)
    assert day7["hl_difference"] == pytest.approx(59.0) and day7["p_value"] == pytest.approx(0.1)
    assert table.loc[("resolved", "day28"), "n_reference"] == 4 and table.loc[("opacity", "day28"), "source"] == "scans"
    with pytest.raises(InputError, match="change table"):
        stats.imaging_outcomes(plan, scans, "placebo", "drug", 3)
