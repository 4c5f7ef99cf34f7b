"""Tests for lungtrial.stats._plan: the analysis plan from the config, its errors, and a light import."""

from __future__ import annotations

import pytest
import yaml

from lungtrial import stats
from lungtrial.errors import InputError

from plan_cases import PRIMARY, REPO, plan_of


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
