"""Statistics against hand-computed and textbook values."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lungtrial import stats
from lungtrial.errors import InputError
from lungtrial.stats import _mixed

REF, TRT = "control arm", "Arm B+"  # arm names with spaces and symbols: nothing may depend on the demo's names


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


def test_hodges_lehmann_by_hand():
    x, y = [5, 7, 9, 11], [1, 2, 4, 8]
    # 16 differences sorted: -3 -1 1 1 3 3 3 4 5 5 6 7 7 8 9 10; median (4 + 5) / 2
    # U null distribution for m = n = 4 (70 arrangements): 1 1 2 3 5 5 7 7 8 7 7 5 5 3 2 1 1
    est, lo, hi, level = stats.hodges_lehmann(x, y, 0.95)
    # P(U <= 0) = 1/70 < 0.025 <= P(U <= 1) = 2/70: k = 1, the range, coverage 1 - 2/70
    assert (est, lo, hi) == (4.5, -3.0, 10.0)
    assert level == pytest.approx(1 - 2 / 70)
    # 90 %: P(U <= 1) = 2/70 < 0.05 <= P(U <= 2) = 4/70: k = 2, coverage 1 - 4/70
    est, lo, hi, level = stats.hodges_lehmann(x, y, 0.90)
    assert (lo, hi) == (-1.0, 9.0)
    assert level == pytest.approx(1 - 4 / 70)


def test_mwu_null_distribution_matches_scipy_exact():
    counts = stats.mwu_null_counts(4, 4)
    assert counts.tolist() == [1, 1, 2, 3, 5, 5, 7, 7, 8, 7, 7, 5, 5, 3, 2, 1, 1]
    counts = stats.mwu_null_counts(6, 9)
    assert counts.sum() == math.comb(15, 6)
    cdf = np.cumsum(counts) / counts.sum()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=6), rng.normal(1.0, size=9)
    res = sps.mannwhitneyu(x, y, method="exact")
    u, p = int(res.statistic), res.pvalue
    assert p == pytest.approx(min(1.0, 2 * min(cdf[u], 1 - (cdf[u - 1] if u else 0.0))))


def test_hodges_lehmann_ci_inverts_the_exact_mann_whitney_test():
    # the interval is the set of shifts d that the two-sided exact test of (x - d) vs y does not reject
    rng = np.random.default_rng(11)
    x, y = rng.normal(1.0, 1.0, 7), rng.normal(0.0, 1.0, 8)
    est, lo, hi, level = stats.hodges_lehmann(x, y, 0.95)
    assert level >= 0.95
    eps = 1e-9

    def p(d):
        return sps.mannwhitneyu(x - d, y, method="exact").pvalue

    assert p(lo - eps) <= 0.05 < p(lo + eps) and p(hi + eps) <= 0.05 < p(hi - eps)


def test_hodges_lehmann_large_sample_covers_shift():
    rng = np.random.default_rng(7)
    x = rng.normal(2.0, 1.0, 80)
    y = rng.normal(0.0, 1.0, 90)
    est, lo, hi, level = stats.hodges_lehmann(x, y)
    assert lo < 2.0 < hi and lo < est < hi
    assert level == pytest.approx(0.95, abs=0.01)


def test_min_per_arm_skips_with_reason():
    row = stats.compare_continuous([1.0, 2.0], [3.0, 4.0, 5.0], REF, TRT, min_per_arm=3)
    assert math.isnan(row["p_value"]) and math.isnan(row["hl_difference"])
    assert row["note"].startswith("not tested") and f"{REF} has n=2" in row["note"] and "min_per_arm=3" in row["note"]
    row = stats.compare_binary([True, False, True], [True], REF, TRT, min_per_arm=3)
    assert math.isnan(row["p_value"]) and f"{TRT} has n=1" in row["note"]


def test_kaplan_meier_known_times():
    km = stats.kaplan_meier([1, 2, 3, 4, 5], [True, True, False, True, True])
    s = dict(zip(km["time"], km["survival"]))
    # 4/5; 4/5 * 3/4; censored at 3; 0.6 * 1/2; 0
    assert s[1.0] == pytest.approx(0.8) and s[2.0] == pytest.approx(0.6)
    assert s[3.0] == pytest.approx(0.6) and s[4.0] == pytest.approx(0.3) and s[5.0] == pytest.approx(0.0)


# Freireich et al. (1963) leukaemia remission data; textbook log-rank chi-square 16.79 (Kleinbaum & Klein)
MP6 = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
MP6_EVENT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
PLACEBO = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]


def test_logrank_freireich():
    chi2, p = stats.logrank(MP6, np.array(MP6_EVENT, bool), PLACEBO, [True] * 21)
    assert chi2 == pytest.approx(16.79, abs=0.01)
    assert p == pytest.approx(4.17e-5, rel=0.01)


def _subjects() -> pd.DataFrame:
    rows = []
    for i, (dur, ev) in enumerate(zip(MP6, MP6_EVENT)):
        rows.append({"subject_id": f"T{i:02d}", "arm": TRT, "days_to_discharge": dur, "discharged": bool(ev)})
    for i, dur in enumerate(PLACEBO):
        rows.append({"subject_id": f"R{i:02d}", "arm": REF, "days_to_discharge": dur, "discharged": "true"})
    df = pd.DataFrame(rows)
    df["length_of_stay_days"] = df["days_to_discharge"] + 1
    df["fever"] = ["true", "false"] * 21
    df["age"] = np.arange(42) + 30
    df["sex"] = ["F", "M", "M"] * 14
    return df


def test_survival_table():
    out = stats.survival(_subjects(), REF, TRT, min_per_arm=3).set_index("endpoint")
    assert list(out.index) == ["discharge"]  # no symptom columns in this frame
    r = out.loc["discharge"]
    assert (r["n_reference"], r["events_reference"], r["n_treatment"], r["events_treatment"]) == (21, 21, 21, 9)
    assert r["chi2"] == pytest.approx(16.79, abs=0.01)
    assert r["median_treatment"] == 23 and r["median_reference"] == 8


VISITS = {"baseline": [-3, 1], "day7": [5, 10]}


def _plan(*outcomes: dict, **options: object) -> stats.Plan:
    """A plan with the given outcomes besides a primary imaging endpoint (the plan needs exactly one primary)."""
    primary = {"name": "opacity", "type": "imaging", "column": "pct_opacity", "label": "Opacity change",
               "role": "primary", "visits": ["day7"]}
    return stats.load_plan({"outcomes": [primary, *outcomes], **options}, VISITS)


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


def _simulated_longitudinal(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(30):
        arm = TRT if i % 2 else REF
        b0 = 20 + rng.normal(0, 3)
        slope = -1.0 if arm == TRT else -0.5
        for day in (0, 7, 14, 28):
            rows.append({"subject_id": f"S{i}", "arm": arm, "study_day": day, "y": b0 + slope * day + rng.normal(0, 1)})
    return pd.DataFrame(rows)


def test_mixed_model_recovers_slopes():
    out = stats.mixed_model(_simulated_longitudinal(), "pct_opacity", REF, TRT, min_per_arm=3).set_index("term")
    assert out["converged"].all()
    assert out.loc["study_day", "estimate"] == pytest.approx(-0.5, abs=0.05)
    assert out.loc["study_day:treated", "estimate"] == pytest.approx(-0.5, abs=0.07)
    assert out.loc["study_day:treated", "ci_low"] < -0.5 < out.loc["study_day:treated", "ci_high"]
    assert out.loc["study_day:treated", "p_value"] < 1e-6


def test_mixed_model_failure_is_a_message_row(monkeypatch):
    d = _simulated_longitudinal().assign(y=5.0)  # no variance at all: cannot be fitted
    out = stats.mixed_model(d, "crp", REF, TRT, min_per_arm=3)
    assert (
        len(out) == 1 and not out["converged"].iloc[0] and out["note"].iloc[0] == "not estimated: all values are equal"
    )
    monkeypatch.setattr(_mixed, "OPTIMIZERS", ("no-such-method",))  # every optimiser fails
    out = stats.mixed_model(_simulated_longitudinal(), "crp", REF, TRT, min_per_arm=3)
    assert len(out) == 1 and not out["converged"].iloc[0]
    assert out["note"].iloc[0].startswith("not estimated: no-such-method: ValueError")
    few = _simulated_longitudinal().query("subject_id in ['S0', 'S1', 'S2']")
    out = stats.mixed_model(few, "crp", REF, TRT, min_per_arm=3)
    assert len(out) == 1 and out["note"].iloc[0].startswith("not tested")


def test_censored_for_model_and_skew():
    v = stats.censored_for_model(pd.Series([1.0, 4.0, 1000.0]), pd.Series(["", "<", ">"]))
    assert v.tolist() == [1.0, 2.0, 1000.0]
    assert stats.is_skewed(np.exp(np.random.default_rng(0).normal(0, 1.5, 200)))
    assert not stats.is_skewed(np.random.default_rng(0).normal(10, 1, 200))


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


def test_mixed_model_falls_back_to_next_optimiser(monkeypatch):
    monkeypatch.setattr(_mixed, "OPTIMIZERS", ("no-such-method", "lbfgs"))
    out = stats.mixed_model(_simulated_longitudinal(), "pct_opacity", REF, TRT, min_per_arm=3)
    assert out["converged"].all() and len(out) == 4
    assert out["note"].iloc[0] == "fitted with lbfgs (no-such-method failed)"


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


def test_censor_values_one_rule_for_all():
    values, flags = pd.Series([0.5, 3.0, 1000.0, 0.5]), pd.Series(["<", "", ">", None])
    assert stats.censor_values(values, flags, "half_limit").tolist() == [0.25, 3.0, 1000.0, 0.5]
    assert stats.censor_values(values, flags, "limit").tolist() == [0.5, 3.0, 1000.0, 0.5]
    assert stats.censor_values(values, flags, "limit_sqrt2").iloc[0] == pytest.approx(0.5 / math.sqrt(2))
    assert stats.censor_values(values, flags, "exclude").isna().tolist() == [True, False, True, False]
    assert stats.censored_for_model(values, flags).tolist() == stats.censor_values(values, flags).tolist()
    with pytest.raises(ValueError, match="censoring rule 'half'"):
        stats.censor_values(values, flags, "half")


def test_censoring_changes_ranks():
    # a single lower limit below every measured value: ranks are the same whatever the rule
    assert not stats.censoring_changes_ranks([0.5, 0.5, 1.0, 2.0], ["<", "<", "", ""])
    assert stats.censoring_changes_ranks([0.5, 0.4, 1.0], ["<", "", ""])  # a measured value below the limit
    assert stats.censoring_changes_ranks([0.5, 1.0, 2.0], ["<", "<", ""])  # two different limits
    assert stats.censoring_changes_ranks([10.0, 20.0], ["", ">"]) is False
    assert stats.censoring_changes_ranks([10.0, 30.0, 20.0], ["", "", ">"])


def test_censoring_sensitivity_reruns_under_each_rule():
    frame = pd.DataFrame({"arm": [REF] * 4 + [TRT] * 4, "value": [0.5, 1, 2, 3, 0.5, 0.5, 1, 2],
                          "censored": ["<", "", "", "", "<", "<", "", ""]})

    def analysis(d):
        ref, trt = d.loc[d["arm"] == REF, "y"], d.loc[d["arm"] == TRT, "y"]
        return {"mean_difference": trt.mean() - ref.mean()}

    out = stats.censoring_sensitivity(frame, analysis).set_index("censor_rule")
    assert list(out.index) == list(stats.CENSOR_RULES)
    assert out.loc["limit", "mean_difference"] == pytest.approx(1.0 - 1.625)
    assert out.loc["half_limit", "mean_difference"] == pytest.approx(0.875 - 1.5625)
    assert (out["n_censored"] == 3).all() and not out["censoring_changes_ranks"].any()


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


def test_km_median_midpoint_of_flat_stretch():
    # 10 subjects, events at 1, 2, 4, 5, 7 (S = 0.5 from day 7), next event at 8: median 7.5 as R, not 7
    med, _, _ = stats.km_median([1, 2, 4, 5, 7, 8, 9, 11, 12, 14], [True] * 10)
    assert med == 7.5
    med, _, _ = stats.km_median([1, 2, 3, 4], [True, False, False, False])
    assert math.isnan(med)  # the curve never falls to 0.5


def test_mixed_model_visit_factor_differences_and_no_intercept_p():
    d = _simulated_longitudinal().assign(visit=lambda f: f["study_day"].map({0: "d0", 7: "d7", 14: "d14", 28: "d28"}))
    out = stats.mixed_model(d, "y", REF, TRT, 3, time="visit", df_method="between-within").set_index("term")
    differences = [f"difference at {v}" for v in ("d0", "d7", "d14", "d28")]
    assert list(out.loc[out["kind"] == "difference"].index) == differences
    assert math.isnan(out.loc["Intercept", "p_value"]) and math.isnan(out.loc["difference at d0", "p_value"])
    # true difference at day 28: (-1.0 + 0.5) * 28 = -14
    r = out.loc["difference at d28"]
    assert r["ci_low"] < -14 < r["ci_high"] and r["p_value"] < 1e-6
    # nlme's rule, 30 subjects, 120 observations: between-subject term 30 - 1 - 1, within terms 120 - 30 - 6
    assert out.loc["treated", "df"] == 28 and out.loc["treated:visit[d28]", "df"] == 84
    assert r["df"] == 28  # a combination takes its smallest df
    assert r["estimate"] == pytest.approx(out.loc["treated", "estimate"] + out.loc["treated:visit[d28]", "estimate"])


def test_mixed_models_note_censoring_and_sensitivity():
    d = _simulated_longitudinal().assign(y=lambda f: np.exp(f["y"] / 10))
    labs = d.assign(
        analyte="crp", analyte_label="CRP", unit="mg/L", visit="",
        censored=np.where(d["y"] < 2.0, "<", ""), value=np.where(d["y"] < 2.0, 2.0, d["y"]),
    )
    scans = pd.DataFrame(columns=["subject_id", "arm", "study_day", "status"])
    n_cens = int((labs["censored"] == "<").sum())
    assert n_cens > 0
    out = stats.mixed_models(scans, labs, REF, TRT, 3, scales={"crp": "log"})
    assert (out["n_censored"] == n_cens).all() and (out["censor_rule"] == "half_limit").all()
    assert f"{n_cens} censored value(s), rule half_limit" in out["note"].iloc[0]
    sens = stats.mixed_models_censoring_sensitivity(
        labs, REF, TRT, 3, rules=("half_limit", "limit"), scales={"crp": "log"}
    )
    slope = sens.loc[sens["term"] == "study_day:treated"].set_index("censor_rule")["estimate"]
    assert set(slope.index) == {"half_limit", "limit"} and slope["half_limit"] != slope["limit"]


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


def test_cox_with_separated_arms_is_not_estimable():
    # every treatment-arm event after the last reference subject left the risk set: R's coxph warns "coefficient
    # may be infinite" and prints exp(coef) 2.96e-10 with the interval 0 to Inf; here: no ratio, and why
    hr = stats.cox_hazard_ratio([1, 2, 3, 4, 5, 6], [True] * 6, [0, 0, 0, 1, 1, 1])
    assert math.isnan(hr["hazard_ratio"]) and math.isnan(hr["hr_ci_low"]) and math.isnan(hr["hr_ci_high"])
    assert "arms separate (the ratio tends to 0)" in hr["hr_note"]
    hr = stats.cox_hazard_ratio([1, 2, 3, 4, 5, 6], [True] * 6, [1, 1, 1, 0, 0, 0])
    assert "every treatment-arm event" not in hr["hr_note"] and "(the ratio tends to infinity)" in hr["hr_note"]
    # a reference subject still at risk (censored on day 5) at the treatment events: an estimate exists
    hr = stats.cox_hazard_ratio([1, 2, 5, 4, 5, 6], [True, True, False, True, True, True], [0, 0, 0, 1, 1, 1])
    assert hr["hr_note"] == "" and 0 < hr["hazard_ratio"] < 1 and np.isfinite(hr["hr_ci_high"])
    assert stats.cox_separation([1, 2], [False, False], [0, 1]) == "no events"


def test_competing_risk_of_death_by_hand():
    discharge = {"name": "discharge", "type": "time-to-event", "column": "days_to_discharge", "event": "discharged",
                 "label": "Time to discharge"}
    plan = _plan(discharge, death_column="days_to_death")
    assert plan.subject_columns() == {"days_to_death": "number"}
    subjects = pd.DataFrame(
        {
            "subject_id": list("ABCDEFGH"),
            "arm": [REF] * 4 + [TRT] * 4,
            "days_to_discharge": [5, 8, 9, 12, 4, 6, 6, 10],
            "discharged": [True, True, False, True, True, False, True, False],
            "days_to_death": [None, None, 7, None, None, None, None, None],
        }
    )
    out = stats.competing_risk_outcomes(plan, subjects, REF, TRT)
    ref = out.loc[out["arm"] == REF].set_index("time")
    # reference: discharge day 5 (1/4), death day 7 (C, last contact day 9), discharges days 8 and 12.
    # Aalen-Johansen: 0.25; death 0.75 * 1/3 = 0.25; + 0.5 * 1/2 = 0.5; + 0.25 = 0.75 (Kaplan-Meier would say 1)
    assert ref.index.tolist() == [0.0, 5.0, 7.0, 8.0, 12.0]
    np.testing.assert_allclose(ref["incidence"], [0, 0.25, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(ref["death_incidence"], [0, 0, 0.25, 0.25, 0.25])
    assert ref.loc[7.0, ["n_at_risk", "n_event", "n_death", "n_censored"]].tolist() == [3, 0, 1, 0]
    trt = out.loc[out["arm"] == TRT]
    assert (trt["death_incidence"] == 0).all() and trt["note"].str.contains("equals 1 - Kaplan-Meier").all()
    km = stats.kaplan_meier([4, 6, 6, 10], [True, False, True, False]).set_index("time")["survival"]
    np.testing.assert_allclose(trt.set_index("time")["incidence"].loc[km.index], 1 - km)
    # a discharge recorded after the day of death is an input error naming the subject
    with pytest.raises(InputError, match=r"subject\(s\) C: discharged is true .* after the day of death"):
        stats.competing_risk_outcomes(plan, subjects.assign(discharged=True), REF, TRT)
    assert stats.competing_risk_outcomes(_plan(), subjects, REF, TRT).empty  # no death column: no table
    # Gray's test of the arms' incidence of discharge, death competing: one value per outcome, on every row
    times = [5, 8, 7, 12, 4, 6, 6, 10]
    codes = [1, 1, 2, 1, 1, 0, 1, 0]
    gray = stats.gray_test(times, codes, [REF] * 4 + [TRT] * 4)
    assert out["gray_p_value"].nunique() == 1 and out["gray_p_value"].iloc[0] == pytest.approx(gray["p_value"])
    assert 0 < gray["p_value"] < 1 and gray["df"] == 1
    few = stats.competing_risk_outcomes(plan, subjects, REF, TRT, min_per_arm=5)
    assert few["gray_p_value"].isna().all() and few["note"].str.contains("Gray's test not done").all()
    assert math.isnan(stats.gray_test([1, 2], [0, 2], ["a", "b"])["statistic"])  # no event of interest


def test_mixed_models_of_the_plans_imaging_metrics_and_fixed_scales_in_the_sensitivity():
    d = _simulated_longitudinal()
    scans = d.assign(status="ok", lung_volume_ml=3000 + d["y"], pct_opacity=d["y"])
    labs = pd.DataFrame(columns=["subject_id", "arm", "study_day", "analyte", "analyte_label", "unit", "value",
                                 "censored"])
    out = stats.mixed_models(scans, labs, REF, TRT, 3, imaging={"lung_volume_ml": "Lung volume"})
    assert set(out["outcome"]) == {"lung_volume_ml"} and (out["unit"] == "mL").all()
    assert stats.metric_unit("pct_opacity") == "% of lung volume" and stats.metric_label("zz") == "zz"
    # skewed values: the data pick the log scale under the configured rule, and every rule keeps it
    skewed = d.assign(y=lambda f: np.exp(f["y"] / 4))
    censored = np.where(skewed["y"] < skewed["y"].quantile(0.2), "<", "")
    lab = skewed.assign(analyte="il6", analyte_label="IL-6", unit="pg/mL", visit="", censored=censored,
                        value=np.where(censored == "<", skewed["y"].quantile(0.2), skewed["y"]))
    sens = stats.mixed_models_censoring_sensitivity(lab, REF, TRT, 3, rules=("half_limit", "exclude"))
    assert set(sens["censor_rule"]) == {"half_limit", "exclude"} and list(sens.columns)[0] == "censor_rule"
    assert sens.groupby("censor_rule")["transform"].first().nunique() == 1


def test_package_exports_resolve_and_the_plan_loads_without_scipy():
    import subprocess
    import sys

    assert [name for name in stats.__all__ if not hasattr(stats, name)] == []
    # the workflow reads the plan when it starts: that must not cost the scipy, statsmodels and lifelines imports
    code = (
        "import sys; from lungtrial.stats import load_plan; "
        "print(sorted({'scipy', 'statsmodels', 'lifelines'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_censoring_at_the_limit_changes_ranks():
    """A measured value equal to a "<" limit ties with it under the rule "limit" and not under "half_limit"."""
    from lungtrial.stats._censoring import censoring_changes_ranks

    assert censoring_changes_ranks([0.5, 0.5, 2.0], ["", "<", ""])
    assert not censoring_changes_ranks([1.0, 0.5, 2.0], ["", "<", ""])


def test_logrank_without_events_is_no_test():
    chi2, p = stats.logrank([3, 5, 7], [False, False, False], [4, 6], [False, False])
    assert np.isnan(chi2) and np.isnan(p)


def _visit_data(seed: int = 5) -> pd.DataFrame:
    """20 subjects x 4 visits with a variance that grows over the visits (an unstructured covariance)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(20):
        b = rng.normal(0, 2)
        for k, (visit, day) in enumerate((("baseline", 0), ("day7", 7), ("day14", 14), ("day28", 28))):
            rows.append({"subject_id": f"S{i:02d}", "arm": TRT if i % 2 else REF, "visit": visit, "study_day": day,
                         "y": 10 + b * (1 + k) + rng.normal(0, 1 + k)})
    return pd.DataFrame(rows)


def test_mmrm_unstructured_complete_data_has_n_minus_2_df_and_compound_symmetry_is_the_random_intercept():
    d = _visit_data()
    us = stats.mixed_model(d, "y", REF, TRT, 3, time="visit", covariance="unstructured").set_index("term")
    # complete data, saturated means per arm and visit: each contrast's variance estimate is a scaled chi-square
    # with n - 2 df, and Satterthwaite's df recovers it exactly
    assert us["df"].to_numpy() == pytest.approx(18.0, abs=1e-6)
    assert us["random_effects"].eq("none").all() and us["covariance_estimates"].iloc[0].startswith("variances ")
    # with a positive correlation, compound symmetry is the random-intercept model: the same fit and the same df
    cs = stats.mixed_model(d, "y", REF, TRT, 3, time="visit", covariance="compound-symmetry").set_index("term")
    ri = stats.mixed_model(d, "y", REF, TRT, 3, time="visit", covariance="random-intercept").set_index("term")
    for col in ("estimate", "se", "df", "reml_loglik"):
        np.testing.assert_allclose(cs[col], ri[col], rtol=1e-6)
    assert us["reml_loglik"].iloc[0] > cs["reml_loglik"].iloc[0] + 10  # the variances differ by visit
    res = stats.mixed_model(d, "y", REF, TRT, 3, time="visit", covariance="ar1", df_method="residual")
    assert (res["df"] == len(d) - 8).all() and res["df_method"].str.contains("N - p").all()


def test_mmrm_errors_and_failures():
    d = _visit_data()
    with pytest.raises(ValueError, match="needs time='visit'"):
        stats.mixed_model(d, "y", REF, TRT, 3, time="continuous", covariance="ar1")
    with pytest.raises(ValueError, match="does not apply"):
        stats.mixed_model(d, "y", REF, TRT, 3, time="visit", covariance="ar1", df_method="between-within")
    with pytest.raises(ValueError, match="toeplitz"):
        stats.mixed_model(d, "y", REF, TRT, 3, time="visit", covariance="toeplitz")
    twice = pd.concat([d, d.iloc[[0]]], ignore_index=True)
    out = stats.mixed_model(twice, "y", REF, TRT, 3, time="visit", covariance="unstructured")
    assert not out["converged"].iloc[0] and "two values at one visit" in out["note"].iloc[0]
    assert set(stats.COVARIANCES) == set(stats.COVARIANCE_CHOICES)


def test_mixed_models_take_a_covariance_per_outcome():
    d = _visit_data()
    scans = d.assign(status="ok", pct_opacity=d["y"], pct_consolidation=d["y"] / 4)
    labs = pd.DataFrame(columns=["subject_id", "arm", "study_day", "visit", "analyte", "analyte_label", "unit",
                                 "value", "censored"])
    out = stats.mixed_models(scans, labs, REF, TRT, 3, time="visit",
                             covariance={"default": "unstructured", "pct_consolidation": "ar1"})
    assert out.groupby("outcome")["covariance"].first().to_dict() == {"pct_opacity": "unstructured",
                                                                      "pct_consolidation": "ar1"}
    assert out["converged"].all()
