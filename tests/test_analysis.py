"""The analysis plan (lungtrial.stats.load_plan, run_plan): loading and its errors, ANCOVA and Fisher rows against R,
multiplicity, baseline before the first dose, Table 1 rounding, the demo's Table 3 rows. Golden values:
tests/fixtures/r/*.R."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lungtrial import clinical, stats
from lungtrial.errors import InputError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "r"
VISITS = {"baseline": [-3, 1], "day7": [5, 10], "day14": [11, 18], "day28": [24, 35]}
REF, TRT = "control", "UC-MSC"


def plan_of(*outcomes, **options):
    return stats.load_plan({"outcomes": list(outcomes), **options}, VISITS)


PRIMARY = {"name": "lesion", "type": "imaging", "column": "pct_opacity", "label": "Lesion change", "role": "primary",
           "visits": ["day28"]}


# ------------------------------------------------------------------------------------------------ the plan
def test_demo_config_plan_loads_with_one_primary_endpoint():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    plan = stats.load_plan(config["analysis"], config["clinical"]["visits"])
    assert plan.primary.name == "lesion_volume_change" and plan.primary.analysis == "ancova"
    assert plan.primary.visits == ("day28",) and plan.baseline_visit == "baseline"
    assert {o.role for o in plan.outcomes} == {"primary", "secondary", "exploratory"}
    levels = [o.level for o in plan.outcomes if o.column == "oxygen_support"]
    assert levels == ["none"]
    # no binary row repeats another (the family's adjustment counts each event once)
    binary = [o.name for o in plan.of_type("binary")]
    assert "mechanical_ventilation" in binary and not [n for n in binary if n.endswith("mechanical_ventilation")
                                                       and n != "mechanical_ventilation"]
    # nothing defined only for subjects with an event is compared as a continuous outcome
    assert not [o for o in plan.of_type("continuous") if o.column == "length_of_stay_days"]
    # no time to an event is compared among subjects with the event only
    durations = ("days_to_discharge", "days_to_symptom_resolution")
    assert not [o for o in plan.of_type("continuous") if o.column in durations]
    assert plan.subject_columns()["fatigue"] == "bool" and plan.subject_columns()["oxygen_support"] == "text"
    # deaths compete with the times to event; the mixed models' scales are fixed in advance
    assert plan.death_column == "days_to_death" and plan.subject_columns()["days_to_death"] == "number"
    assert plan.model_scales()["crp"] == "log" and plan.model_scales()["pct_opacity"] == "linear"
    assert plan.imaging_metrics() == ["pct_opacity", "pct_consolidation"]
    assert list(plan.time_to_event()) == ["time_to_discharge", "time_to_symptom_resolution"]


@pytest.mark.parametrize(
    "outcomes, options, key, text",
    [
        ([{**PRIMARY, "type": "binery"}], {}, r"analysis\.outcomes\[0\]\.type", "'binery' is not one of"),
        ([PRIMARY, {**PRIMARY, "name": "b"}], {}, r"analysis\.outcomes", "exactly one outcome with role: primary"),
        ([{**PRIMARY, "role": "secondary"}], {}, r"analysis\.outcomes", "found 0"),
        ([PRIMARY, {**PRIMARY, "role": "exploratory"}], {}, r"analysis\.outcomes\[1\]\.name", "already the name"),
        ([{**PRIMARY, "visits": ["day99"]}], {}, r"analysis\.outcomes\[0\]\.visits", "day99 not among"),
        ([PRIMARY, {"name": "d", "type": "continuous", "column": "days_to_discharge", "label": "x"}], {},
         r"analysis\.outcomes\[1\]\.column", "declare it as type time-to-event"),
        ([PRIMARY, {"name": "los", "type": "continuous", "column": "length_of_stay_days", "label": "x"}], {},
         r"analysis\.outcomes\[1\]\.column", "compare days_to_discharge as type time-to-event"),
        ([PRIMARY, {"name": "f", "type": "binary", "label": "Fever"}], {}, r"analysis\.outcomes\[1\]\.column",
         "missing"),
        ([PRIMARY], {"visits": ["day7", "day14"]}, r"analysis\.visits", "must contain day 0"),
        ([PRIMARY], {"multiplicity": {"method": "bonferroni"}}, r"analysis\.multiplicity\.method", "'bonferroni'"),
        ([PRIMARY], {"multiplicity": {"families": {"nope": "holm"}}}, r"analysis\.multiplicity\.families", "nope"),
        ([PRIMARY], {"first_dose_time": "9am"}, r"analysis\.first_dose_time", "HH:MM"),
        ([PRIMARY], {"death_column": "discharged"}, r"analysis\.death_column", "derived by the clinical stage"),
        ([PRIMARY], {"scales": {"crp": "log10"}}, r"analysis\.scales\.crp", "'log10' is not one of linear, log"),
        ([PRIMARY], {"covariance": "toeplitz"}, r"analysis\.covariance", "'toeplitz' is not one of unstructured"),
        ([PRIMARY], {"covariance": {"il6": "ar2"}}, r"analysis\.covariance\.il6", "'ar2' is not one of"),
    ],
)
def test_plan_errors_name_the_config_key(outcomes, options, key, text):
    with pytest.raises(InputError, match=rf"^config {key}.*{text}") as err:
        plan_of(*outcomes, **options)
    assert "\n" not in str(err.value)


def test_covariance_of_the_visit_models_globally_or_per_outcome():
    assert plan_of(PRIMARY).model_covariance() == {"default": "unstructured"}
    assert plan_of(PRIMARY, covariance="ar1").model_covariance() == {"default": "ar1"}
    per = plan_of(PRIMARY, covariance={"il6": "random-slope", "pct_opacity": "compound-symmetry"})
    assert per.model_covariance() == {"default": "unstructured", "il6": "random-slope",
                                      "pct_opacity": "compound-symmetry"}


def test_levels_expand_and_first_dose_time():
    plan = plan_of(
        PRIMARY,
        {"name": "oxygen", "type": "binary", "column": "oxygen_support", "levels": ["none", "high-flow"],
         "label": "Oxygen"},
        first_dose_time="09:00",
    )
    assert [o.name for o in plan.outcomes[1:]] == ["oxygen_none", "oxygen_high_flow"]
    assert plan.outcomes[2].label == "Oxygen: high-flow" and plan.outcomes[2].family == "exploratory"
    assert plan.first_dose_day == pytest.approx(0.375)


# ----------------------------------------------------------------------------------------------- ANCOVA vs R
def test_ancova_matches_r_lm():
    data = pd.read_csv(FIXTURES / "ancova_data.csv")
    expected = pd.read_csv(FIXTURES / "ancova_expected.csv")
    assert len(expected) == 4
    for exp in expected.itertuples():
        d = data.loc[data["dataset"] == exp.dataset]
        row = stats.ancova(d, REF, TRT, min_per_arm=3, confidence=0.95, log=exp.scale == "log")
        for key in ("estimate", "std_error", "t_value", "ci_low", "ci_high", "baseline_slope"):
            assert row[key] == pytest.approx(getattr(exp, key), rel=1e-6), (exp.dataset, exp.scale, key)
        assert row["df"] == exp.df
        assert row["p_value"] == pytest.approx(exp.p_value, rel=1e-6)
        assert row["n_reference"] + row["n_treatment"] == exp.n


def test_ancova_too_few_is_a_note():
    d = pd.DataFrame({"subject_id": ["a", "b", "c"], "arm": [REF, REF, TRT], "baseline": [1, 2, 3], "value": [2, 3, 1]})
    row = stats.ancova(d, REF, TRT, min_per_arm=2)
    assert np.isnan(row["p_value"]) and row["note"].startswith("not tested: UC-MSC has n=1")


# ------------------------------------------------------------------------------------ Table 3 binary rows vs R
def table3_subjects() -> pd.DataFrame:
    """A subjects table with the model trial's Table 3 counts (9 per arm)."""
    expected = pd.read_csv(FIXTURES / "fisher_table3_expected.csv")
    rows = {"subject_id": [f"T{i}" for i in range(1, 10)] + [f"C{i}" for i in range(1, 10)],
            "arm": [TRT] * 9 + [REF] * 9}
    for r in expected.itertuples():
        rows[r.outcome] = [i < r.events_treatment for i in range(9)] + [i < r.events_reference for i in range(9)]
    return pd.DataFrame(rows)


def test_table3_binary_rows_match_published_p_and_r():
    expected = pd.read_csv(FIXTURES / "fisher_table3_expected.csv")
    outcomes = [{"name": o, "type": "binary", "column": o, "label": o} for o in expected["outcome"]]
    plan = plan_of(PRIMARY, *outcomes, multiplicity={"method": "none"})
    table = stats.binary_outcomes(table3_subjects(), None, plan.of_type("binary"), REF, TRT, 3).set_index("outcome")
    for exp in expected.itertuples():
        row = table.loc[exp.outcome]
        assert round(row["p_value"], 3) == pytest.approx(exp.published_p, abs=1e-9), exp.outcome
        assert row["p_value"] == pytest.approx(exp.p_value, rel=1e-9), exp.outcome
        # R's fisher.test finds the conditional MLE and its limits by uniroot, to an absolute tolerance of
        # .Machine$double.eps^0.25 = 1.2e-4: R itself is no closer than that
        for key, r_key in (("odds_ratio", "odds_ratio"), ("or_ci_low", "ci_low"), ("or_ci_high", "ci_high")):
            assert row[key] == pytest.approx(getattr(exp, r_key), rel=1e-3, abs=1.3e-4), (exp.outcome, key)


# --------------------------------------------------------------------------------------------- multiplicity
def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, np.nan]
    np.testing.assert_allclose(stats.adjust(p, "holm"), [0.03, 0.06, 0.06, np.nan])
    np.testing.assert_allclose(stats.adjust(p, "benjamini-hochberg"), [0.03, 0.04, 0.04, np.nan])
    np.testing.assert_allclose(stats.adjust(p, "none"), p)


def test_families_are_adjusted_separately_and_primary_comes_first():
    plan = stats.Plan(outcomes=(), visits=("baseline",), multiplicity={"b": "benjamini-hochberg"})
    table = pd.DataFrame({"family": ["a", "b", "a", "b", "primary"], "p_value": [0.01, 0.01, 0.04, 0.04, 0.2]})
    out = stats.adjust_families(table, plan)
    np.testing.assert_allclose(out["p_adjusted"], [0.02, 0.02, 0.04, 0.04, 0.2])
    assert out["adjustment"].tolist() == [
        "Holm, 2 tests in family", "Benjamini-Hochberg (false discovery rate), 2 tests in family",
        "Holm, 2 tests in family", "Benjamini-Hochberg (false discovery rate), 2 tests in family",
        "none needed (only test in family)",
    ]


# ------------------------------------------------------------------------------------------------- baseline
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


def _censored_labs() -> pd.DataFrame:
    """IL-6 of six subjects at baseline (day -1) and day 7: two baselines below the limit <2."""
    ids = list("abcdef")
    base = pd.DataFrame({"subject_id": ids, "arm": [REF] * 3 + [TRT] * 3, "visit": "baseline", "study_day": -1.0,
                         "value": [2.0, 2.0, 8.0, 4.0, 6.0, 10.0], "censored": ["<", "<", "", "", "", ""]})
    day7 = base.assign(visit="day7", study_day=7.0, value=[3.0, 5.0, 9.0, 6.0, 9.0, 12.0], censored="")
    return pd.concat([base, day7], ignore_index=True).assign(analyte="il6", analyte_label="IL-6", unit="pg/mL")


def test_table1_summarises_censored_labs_by_the_configured_rule():
    subjects = pd.DataFrame({"subject_id": list("abcdef"), "arm": [REF] * 3 + [TRT] * 3})
    scans = pd.DataFrame(columns=["subject_id", "arm", "visit", "study_day", "status"])
    cell = {rule: stats.table1(subjects, _censored_labs(), scans, [REF, TRT], censoring=rule)
            .set_index("variable").loc["IL-6, pg/mL", REF] for rule in ("half_limit", "limit", "exclude")}
    assert cell["half_limit"] == "1.00 (1.00, 4.50) (2 censored)"  # <2 as 1
    assert cell["limit"] == "2.00 (2.00, 5.00) (2 censored)"
    assert cell["exclude"] == "8.00 (8.00, 8.00) [n=1] (2 censored)"


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


# ------------------------------------------------------------------------------------------- the demo sheet
def test_demo_subjects_sheet_carries_the_reported_rows():
    from lungtrial.demo.clinical import OXYGEN_LEVELS, subjects_table
    from lungtrial.demo.design import design

    a, b = subjects_table(design()), subjects_table(design())
    pd.testing.assert_frame_equal(a, b)
    assert set(a["oxygen_support"]) <= set(OXYGEN_LEVELS)
    assert (a.loc[a["mechanical_ventilation"] == "true", "oxygen_support"] == "mechanical ventilation").all()
    for col in ("low_flow_oxygen", "high_flow_oxygen", "fatigue"):
        assert set(a[col]) == {"true", "false"}, col
    assert (a.loc[a["oxygen_support"] == "low-flow", "low_flow_oxygen"] == "true").all()
