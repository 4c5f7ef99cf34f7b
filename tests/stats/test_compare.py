"""Tests for lungtrial.stats._compare: two-arm comparisons of binary and continuous outcomes (by hand and as R)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lungtrial import stats
from lungtrial.errors import InputError

from r_golden import P_ABS, REL, _close, _read, _two_sample_sets
from stats_cases import REF, TRT, _plan, _subjects


def test_fisher_tea_tasting():
    # Fisher's lady tasting tea: table [[3, 1], [1, 3]], two-sided p = 34/70; the sample odds ratio is 9, the
    # conditional ML estimate R's fisher.test reports 6.408309 (interval 0.2117329 to 621.9338)
    res = stats.compare_binary([True] * 1 + [False] * 3, [True] * 3 + [False], REF, TRT, min_per_arm=3)
    assert res["summary_treatment"] == "3/4 (75%)" and res["summary_reference"] == "1/4 (25%)"
    assert res["p_value"] == pytest.approx(34 / 70, abs=1e-12)
    assert res["odds_ratio"] == pytest.approx(6.408309, rel=1e-6)
    assert res["or_ci_low"] == pytest.approx(0.2117329, rel=1e-6)
    assert res["or_ci_high"] == pytest.approx(621.9338, rel=1e-6)
    # Newcombe's hybrid score interval (tests/fixtures/r/make_golden.R): -0.1354884 to 0.7890833
    assert res["risk_difference"] == 0.5 and res["rd_ci_high"] == pytest.approx(0.7890833, rel=1e-6)
    assert res["note"] == ""


def test_mann_whitney_textbook():
    # Wikipedia/scipy example: U = 17 for the first sample, exact two-sided p = 0.1111
    males = [19, 22, 16, 29, 24]
    females = [20, 11, 17, 12]
    row = stats.compare_continuous(females, males, REF, TRT, min_per_arm=3)
    assert row["u_statistic"] == 17
    assert row["p_value"] == pytest.approx(0.11111, abs=1e-4)
    assert row["median_treatment"] == 22 and row["median_reference"] == 14.5
    assert row["summary_reference"] == "14.5 (11.8, 17.8)"


def test_min_per_arm_skips_with_reason():
    row = stats.compare_continuous([1.0, 2.0], [3.0, 4.0, 5.0], REF, TRT, min_per_arm=3)
    assert math.isnan(row["p_value"]) and math.isnan(row["hl_difference"])
    assert row["note"].startswith("not tested") and f"{REF} has n=2" in row["note"] and "min_per_arm=3" in row["note"]
    row = stats.compare_binary([True, False, True], [True], REF, TRT, min_per_arm=3)
    assert math.isnan(row["p_value"]) and f"{TRT} has n=1" in row["note"]


def test_binary_and_continuous_tables():
    subj = _subjects()
    ae = pd.DataFrame({"subject_id": ["T00", "T01", "R03"], "day": [1, 2, 3], "term": ["rash"] * 3})
    plan = _plan(
        {"name": "fever", "type": "binary", "column": "fever", "label": "Fever"},
        {"name": "any_adverse_event", "type": "binary", "source": "adverse_events", "label": "Any adverse event"},
        {"name": "igg_at_discharge", "type": "continuous", "analyte": "igg", "label": "IgG at discharge"},
        {"name": "discharge", "type": "time-to-event", "column": "days_to_discharge", "event": "discharged",
         "label": "Time to discharge"},
    )
    b = stats.binary_outcomes(subj, ae, plan.of_type("binary"), REF, TRT, min_per_arm=3).set_index("outcome")
    assert list(b.index) == ["fever", "any_adverse_event"]
    # fever alternates true/false over 42 rows: treatment rows 0-20 have 11 true, reference rows 21-41 have 10
    assert b.loc["fever", "summary_treatment"] == "11/21 (52%)" and b.loc["fever", "summary_reference"] == "10/21 (48%)"
    assert b.loc["any_adverse_event", "summary_treatment"] == "2/21 (10%)"
    assert b.loc["any_adverse_event", "summary_reference"] == "1/21 (5%)"
    b = stats.binary_outcomes(subj, None, plan.of_type("binary"), REF, TRT, min_per_arm=3).set_index("outcome")
    assert "not available" in b.loc["any_adverse_event", "note"]
    labs = pd.DataFrame(
        {
            "subject_id": ["T00", "T00", "R00", "R01", "R02", "T01", "T02"],
            "arm": [TRT, TRT, REF, REF, REF, TRT, TRT],
            "datetime": pd.to_datetime(
                ["2020-01-01", "2020-01-09", "2020-01-05", "2020-01-05", "2020-01-05", "2020-01-05", "2020-01-05"]
            ),
            "analyte": "igg",
            "analyte_label": "IgG",
            "unit": "AU/mL",
            "value": [1.0, 50.0, 10.0, 12.0, 14.0, 40.0, 60.0],
            "censored": ["", ">", "", "", "", "", ""],
        }
    )
    c = stats.continuous_outcomes(subj, labs, plan.of_type("continuous"), REF, TRT, min_per_arm=3)
    igg = c.set_index("outcome").loc["igg_at_discharge"]
    # each subject's last value; the censored ">50" stays at its limit under every rule but "exclude"
    assert igg["median_treatment"] == 50.0 and igg["hl_difference"] == pytest.approx(38.0)
    assert igg["unit"] == "AU/mL" and "1 censored value(s), rule half_limit" in igg["note"]
    # days to discharge is a time to event: every subject counts, the 12 not discharged censored (not left out)
    s = stats.survival_outcomes(plan, subj, REF, TRT, min_per_arm=3).set_index("outcome").loc["discharge"]
    assert (s["n_treatment"], s["events_treatment"], s["n_reference"], s["events_reference"]) == (21, 9, 21, 21)
    assert s["chi2"] == pytest.approx(16.79, abs=0.01) and s["median_treatment"] == 23


def test_as_bool():
    s = stats.as_bool(pd.Series(["true", "False", "", None, 1, 0], name="x"))
    assert (
        s.tolist()[:2] == [True, False] and s.isna().tolist()[2:4] == [True, True] and s.tolist()[4:] == [True, False]
    )
    with pytest.raises(ValueError, match="column 'x'"):
        stats.as_bool(pd.Series(["maybe"], name="x"))


def test_check_arms_names_what_was_found():
    subj = pd.DataFrame({"subject_id": ["A", "B"], "arm": [REF, "other"]})
    with pytest.raises(InputError, match=r"stats.treatment_arm='Arm B\+'.*found \['control arm', 'other'\]"):
        stats.check_arms(subj, REF, TRT)
    stats.check_arms(subj.assign(arm=[REF, TRT]), REF, TRT)


def test_levels_give_one_binary_row_per_level():
    subj = pd.DataFrame(
        {
            "subject_id": list("ABCDEF"),
            "arm": [REF] * 3 + [TRT] * 3,
            "oxygen_support": ["none", "Low-flow ", "none", "high-flow", "low-flow", None],
        }
    )
    plan = _plan({"name": "oxygen", "type": "binary", "column": "oxygen_support", "label": "Oxygen",
                  "levels": ["low-flow", "high-flow"]})
    out = stats.binary_outcomes(subj, None, plan.of_type("binary"), REF, TRT, 3).set_index("outcome")
    assert list(out.index) == ["oxygen_low_flow", "oxygen_high_flow"]
    assert out.loc["oxygen_low_flow", "label"] == "Oxygen: low-flow"
    # levels compare without regard to case and blanks; a missing value is left out of N
    assert (out.loc["oxygen_low_flow", "summary_reference"], out.loc["oxygen_low_flow", "summary_treatment"]) == (
        "1/3 (33%)", "1/2 (50%)")
    assert (out.loc["oxygen_high_flow", "summary_reference"], out.loc["oxygen_high_flow", "summary_treatment"]) == (
        "0/3 (0%)", "1/2 (50%)")
    with pytest.raises(InputError, match="column 'oxygen_support'.*declare the level"):
        stats.event_indicator(subj["oxygen_support"])


def test_binary_zero_cell_is_explained_and_risk_difference_has_an_interval():
    row = stats.compare_binary([True] * 4 + [False] * 5, [False] * 9, REF, TRT, min_per_arm=3)
    assert row["odds_ratio"] == 0 and row["or_ci_low"] == 0 and np.isfinite(row["or_ci_high"])
    assert row["note"] == "a zero cell: the conditional ML odds ratio is 0, its lower limit 0"
    assert row["risk_difference"] == pytest.approx(-4 / 9) and row["rd_ci_low"] < -4 / 9 < row["rd_ci_high"]
    row = stats.compare_binary([False] * 9, [False] * 9, REF, TRT, min_per_arm=3)
    assert math.isnan(row["odds_ratio"]) and row["p_value"] == 1 and "not defined" in row["note"]


def test_mann_whitney_exact_at_nine_per_arm():
    # 9 vs 9 without ties: R's exact p, not scipy's "auto" normal approximation
    rng = np.random.default_rng(4)
    x, y = rng.normal(0.3, 1, 9), rng.normal(0, 1, 9)
    row = stats.compare_continuous(y, x, REF, TRT, min_per_arm=3)
    assert row["p_value"] == pytest.approx(sps.mannwhitneyu(x, y, method="exact").pvalue, abs=1e-12)
    assert "exact" in row["test"]


def test_compare_continuous_names_the_method():
    x, y = _two_sample_sets()["demo9_noties"]  # 9 vs 9 without ties: exact, as R
    row = stats.compare_continuous(y, x, "ref", "trt", min_per_arm=3)
    assert "exact" in row["test"] and "Moses" in row["test"]
    x, y = _two_sample_sets()["demo9_ties"]
    row = stats.compare_continuous(y, x, "ref", "trt", min_per_arm=3)
    assert "normal approximation" in row["test"]


@pytest.mark.parametrize("row", _read("golden_binary.csv").to_dict("records"), ids=lambda r: r["set"])
def test_binary_as_fisher_test_and_newcombe(row):
    b = _read("binary.csv").set_index("set").loc[row["set"]]
    trt = [True] * b["events_treatment"] + [False] * (b["n_treatment"] - b["events_treatment"])
    ref = [True] * b["events_reference"] + [False] * (b["n_reference"] - b["events_reference"])
    out = stats.compare_binary(ref, trt, "ref", "trt", min_per_arm=3)
    assert out["p_value"] == pytest.approx(row["p_value"], abs=P_ABS)
    for key in ("risk_difference", "rd_ci_low", "rd_ci_high"):
        assert _close(out[key], row[key], REL), key
    if row["set"] == "both_zero":  # R prints 0 (0, Inf); no odds ratio is defined without any event
        assert math.isnan(out["odds_ratio"]) and "not defined" in out["note"]
        return
    for key in ("odds_ratio", "or_ci_low", "or_ci_high"):
        assert _close(out[key], row[key], REL), (key, out[key], row[key])
    zero_cell = 0 in (
        b["events_treatment"],
        b["n_treatment"] - b["events_treatment"],
        b["events_reference"],
        b["n_reference"] - b["events_reference"],
    )
    assert ("zero cell" in out["note"]) == zero_cell
