"""Tests for lungtrial.stats._baseline: the baseline value before the first dose, Table 1's rounding and its
censored labs."""

from __future__ import annotations

import pandas as pd

from lungtrial import clinical, stats

from plan_cases import REF, TRT, VISITS, _censored_labs


def test_baseline_is_the_last_value_before_the_first_dose():
    windows = clinical.visit_windows(VISITS)
    labs = pd.DataFrame({"subject_id": ["A", "A", "A", "B", "B", "C"],
                         "study_day": [-2.75, 0.25, 0.5, 0.5, 1.2, -1.0]})
    # first dose at 09:00 on day 0: A's 06:00 sample on day 0 is baseline, never the 12:00 one; B has none before
    visits = clinical.assign_visits(labs, windows, by=["subject_id"], first_dose_day=0.375)
    assert visits.tolist() == ["", "baseline", "", "", "", "baseline"]
    # scans carry a date only: a scan dated day 0 is before the dose, one dated day 1 never is
    scans = pd.DataFrame({"subject_id": ["A", "A", "B"], "study_day": [-1.0, 0.0, 1.0]})
    assert clinical.assign_visits(scans, windows, by=["subject_id"]).tolist() == ["", "baseline", ""]


def test_baseline_from_a_wider_window_is_flagged():
    scans = pd.DataFrame({"subject_id": ["A", "B", "B", "C"], "arm": [REF, TRT, TRT, REF],
                          "study_day": [0, -6, 2, -12], "visit": ["baseline", "", "", ""],
                          "status": "ok", "pct_opacity": [5.0, 4.0, 9.0, 3.0]})
    base = stats.baseline_values(scans, ["pct_opacity"], "baseline", lookback_days=7)
    assert base["subject_id"].tolist() == ["A", "B"]  # C's scan lies beyond the 7-day lookback, B's day 2 is after
    assert base["pct_opacity"].tolist() == [5.0, 4.0]
    assert base["baseline_flag"].tolist() == ["", "day -6, before the baseline window"]
    assert stats.baseline_values(scans, ["pct_opacity"], "baseline")["subject_id"].tolist() == ["A"]


# -------------------------------------------------------------------------------------------------- Table 1
def test_table1_one_rounding_rule_per_row():
    assert [stats.table1_decimals(v) for v in ([0.6, 0.38, 1.44], [376, 402], [15.8, 37.5], [0.06], [0, 0])] == [
        2, 0, 1, 4, 0]
    subjects = pd.DataFrame({"subject_id": list("abcdef"), "arm": [REF] * 3 + [TRT] * 3,
                             "age": [40.0, 50.0, 61.0, 45.0, 47.0, 300.0]})
    empty_labs = pd.DataFrame(columns=["subject_id", "arm", "analyte", "analyte_label", "unit", "value", "censored",
                                       "visit", "study_day"])
    empty_scans = pd.DataFrame(columns=["subject_id", "arm", "visit", "study_day", "status"])
    t1 = stats.table1(subjects, empty_labs, empty_scans, [REF, TRT]).set_index("variable")
    # the row's largest number (Q3 173.5) has 3 significant figures without decimals: every number of the row too
    assert t1.loc["Age, years", REF] == "50 (45, 56)"
    assert t1.loc["Age, years", TRT] == "47 (46, 174)"
    assert t1.loc["Age, years", "statistic"] == "median (Q1, Q3)"


def test_table1_summarises_censored_labs_by_the_configured_rule():
    subjects = pd.DataFrame({"subject_id": list("abcdef"), "arm": [REF] * 3 + [TRT] * 3})
    scans = pd.DataFrame(columns=["subject_id", "arm", "visit", "study_day", "status"])
    cell = {rule: stats.table1(subjects, _censored_labs(), scans, [REF, TRT], censoring=rule)
            .set_index("variable").loc["IL-6, pg/mL", REF] for rule in ("half_limit", "limit", "exclude")}
    assert cell["half_limit"] == "1.00 (1.00, 4.50) (2 censored)"  # <2 as 1
    assert cell["limit"] == "2.00 (2.00, 5.00) (2 censored)"
    assert cell["exclude"] == "8.00 (8.00, 8.00) [n=1] (2 censored)"
