"""Statistics against hand-computed and textbook values."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lungtrial import stats
from lungtrial.errors import InputError

REF, TRT = "control arm", "Arm B+"  # arm names with spaces and symbols: nothing may depend on the demo's names


def test_fisher_tea_tasting():
    # Fisher's lady tasting tea: table [[3, 1], [1, 3]], two-sided p = 34/70, conditional-free OR = 9
    res = stats.compare_binary([True] * 1 + [False] * 3, [True] * 3 + [False], REF, TRT, min_per_arm=3)
    assert res["summary_treatment"] == "3/4 (75%)" and res["summary_reference"] == "1/4 (25%)"
    assert res["p_value"] == pytest.approx(34 / 70, abs=1e-12)
    assert res["odds_ratio"] == pytest.approx(9.0)


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
    counts = stats._mwu_null_counts(4, 4)
    assert counts.tolist() == [1, 1, 2, 3, 5, 5, 7, 7, 8, 7, 7, 5, 5, 3, 2, 1, 1]
    counts = stats._mwu_null_counts(6, 9)
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


def test_binary_and_continuous_tables():
    subj = _subjects()
    ae = pd.DataFrame({"subject_id": ["T00", "T01", "R03"], "day": [1, 2, 3], "term": ["rash"] * 3})
    b = stats.binary_outcomes(subj, ae, REF, TRT, min_per_arm=3).set_index("outcome")
    assert list(b.index) == ["fever", "any_adverse_event"]
    assert b.loc["any_adverse_event", "summary_treatment"] == "2/21 (10%)"
    assert b.loc["any_adverse_event", "summary_reference"] == "1/21 (5%)"
    b = stats.binary_outcomes(subj, None, REF, TRT, min_per_arm=3).set_index("outcome")
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
    c = stats.continuous_outcomes(subj, labs, REF, TRT, min_per_arm=3).set_index("outcome")
    assert c.loc["days_to_discharge", "n_treatment"] == 9  # censored subjects left out
    assert "12 censored" in c.loc["days_to_discharge", "note"]
    igg = c.loc["igg_at_discharge"]
    assert igg["median_treatment"] == 50.0 and igg["hl_difference"] == pytest.approx(38.0)
    assert "1 censored value" in igg["note"]


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
            "study_day": 0.0,
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
    monkeypatch.setattr(stats, "OPTIMIZERS", ("no-such-method",))  # every optimiser fails
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
    monkeypatch.setattr(stats, "OPTIMIZERS", ("no-such-method", "lbfgs"))
    out = stats.mixed_model(_simulated_longitudinal(), "pct_opacity", REF, TRT, min_per_arm=3)
    assert out["converged"].all() and len(out) == 4
    assert out["note"].iloc[0] == "fitted with lbfgs (no-such-method failed)"


def test_levels_count_as_any_but_none():
    values, levels = stats.any_level(pd.Series(["none", "low-flow", None, "high-flow", "None"]))
    assert values.tolist()[:2] == [False, True] and values.isna().tolist()[2] and values.tolist()[3:] == [True, False]
    assert levels == ["high-flow", "low-flow"]
    subj = pd.DataFrame(
        {
            "subject_id": list("ABCDEF"),
            "arm": [REF] * 3 + [TRT] * 3,
            "oxygen_support": ["none", "low-flow", "none", "high-flow", "low-flow", "none"],
        }
    )
    row = stats.binary_outcomes(subj, None, REF, TRT, 3).set_index("outcome").loc["oxygen_support"]
    assert (row["summary_reference"], row["summary_treatment"]) == ("1/3 (33%)", "2/3 (67%)")
    assert row["note"] == "any of: high-flow, low-flow"
