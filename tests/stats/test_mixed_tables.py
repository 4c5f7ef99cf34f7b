"""Tests for lungtrial.stats._mixed_tables: the mixed models of a plan's outcomes, censoring and skew."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungtrial import stats

from stats_cases import REF, TRT, _simulated_longitudinal, _visit_data


def test_censored_for_model_and_skew():
    v = stats.censored_for_model(pd.Series([1.0, 4.0, 1000.0]), pd.Series(["", "<", ">"]))
    assert v.tolist() == [1.0, 2.0, 1000.0]
    assert stats.is_skewed(np.exp(np.random.default_rng(0).normal(0, 1.5, 200)))
    assert not stats.is_skewed(np.random.default_rng(0).normal(10, 1, 200))


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
