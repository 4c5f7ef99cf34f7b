"""Tests for lungtrial.stats._mixed: the longitudinal models (recovered slopes, failures, MMRM), and their
agreement with R's lmerTest and nlme."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lungtrial import stats
from lungtrial.stats import _mixed

from r_golden import P_ABS, _read
from stats_cases import REF, TRT, _simulated_longitudinal, _visit_data


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


def test_mixed_model_falls_back_to_next_optimiser(monkeypatch):
    monkeypatch.setattr(_mixed, "OPTIMIZERS", ("no-such-method", "lbfgs"))
    out = stats.mixed_model(_simulated_longitudinal(), "pct_opacity", REF, TRT, min_per_arm=3)
    assert out["converged"].all() and len(out) == 4
    assert out["note"].iloc[0] == "fitted with lbfgs (no-such-method failed)"


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


MIXED_REL = 1e-3  # mixed-model estimates
MODELS = {
    "y:continuous:intercept": ("y", "continuous", False),
    "y:visit:intercept": ("y", "visit", False),
    "y:continuous:slope": ("y", "continuous", True),
    "lab:continuous:intercept": ("lab", "continuous", False),
    "lab:visit:intercept": ("lab", "visit", False),
    "singular:continuous:slope": ("singular", "continuous", True),  # a random slope on the boundary
}
VISITS = ["baseline", "day7", "day14", "day28"]
SOFTWARE = {"lmerTest": "satterthwaite", "nlme": "between-within"}


@pytest.fixture(scope="module")
def mixed_fits():
    long = _read("longitudinal.csv")
    fits = {}
    for model, (resp, time, slope) in MODELS.items():
        d = long.assign(y=long["lab"]) if resp == "lab" else long
        if resp == "singular":
            d = _read("longitudinal_singular.csv")
        for software, df_method in SOFTWARE.items():
            fits[model, software] = stats.mixed_model(
                d,
                model,
                "reference",
                "treatment",
                3,
                log=resp == "lab",
                time=time,
                random_slope=slope,
                df_method=df_method,
                visits=VISITS,
            ).set_index("term")
    return fits


@pytest.mark.parametrize("software", list(SOFTWARE))
@pytest.mark.parametrize("model", list(MODELS))
def test_mixed_models_as_lmertest_and_nlme(mixed_fits, model, software):
    out = mixed_fits[model, software]
    assert out["converged"].all()
    golden = _read("golden_mixed.csv").query("model == @model and software == @software")
    if model.startswith("singular"):
        assert "singular fit" in out["note"].iloc[0]
    for g in golden.to_dict("records"):
        if g["kind"] == "variance":
            assert out[g["term"]].iloc[0] == pytest.approx(g["estimate"], rel=MIXED_REL), g["term"]
            continue
        r = out.loc[g["term"]]
        assert r["kind"] == g["kind"]
        assert r["estimate"] == pytest.approx(g["estimate"], rel=MIXED_REL), g["term"]
        assert r["se"] == pytest.approx(g["se"], rel=MIXED_REL), g["term"]
        if software == "nlme":
            assert r["df"] == g["df"], g["term"]
        else:
            assert r["df"] == pytest.approx(g["df"], rel=MIXED_REL), g["term"]
            assert r["ci_low"] == pytest.approx(g["ci_low"], rel=MIXED_REL)
            assert r["ci_high"] == pytest.approx(g["ci_high"], rel=MIXED_REL)
        if g["term"] == "Intercept" or g["term"] in ("treated", "difference at baseline"):
            assert math.isnan(r["p_value"])  # no intercept p value; no test of the randomised baseline difference
        else:
            assert r["p_value"] == pytest.approx(g["p_value"], abs=P_ABS), g["term"]
    assert set(golden.loc[golden["kind"] != "variance", "term"]) <= set(out.index)


MMRM_SETS = {"complete": "longitudinal.csv", "missing": "longitudinal_missing.csv"}
MMRM_DF = {"satterthwaite": ("df_satterthwaite", "p_satterthwaite"), "residual": ("df_residual", "p_residual")}


@pytest.fixture(scope="module")
def mmrm_fits():
    fits = {}
    for data_set, name in MMRM_SETS.items():
        d = _read(name)
        for covariance in stats.RESIDUAL_COVARIANCES:
            for df_method in MMRM_DF:
                fits[data_set, covariance, df_method] = stats.mixed_model(
                    d, "y", "reference", "treatment", 3, time="visit", covariance=covariance, df_method=df_method,
                    visits=VISITS,
                ).set_index("term")
    return fits


@pytest.mark.parametrize("df_method", list(MMRM_DF))
@pytest.mark.parametrize("covariance", ["unstructured", "compound-symmetry", "ar1"])
@pytest.mark.parametrize("data_set", list(MMRM_SETS))
def test_mmrm_as_nlme_gls_with_satterthwaite_df(mmrm_fits, data_set, covariance, df_method):
    """nlme::gls with corSymm + varIdent, corCompSymm, corAR1 (tests/fixtures/r/mmrm.R); Satterthwaite's df by
    its formula in R (numDeriv), N - p as nlme's summary."""
    out = mmrm_fits[data_set, covariance, df_method]
    assert out["converged"].all() and (out["covariance"] == covariance).all()
    golden = _read("golden_mmrm.csv").query("set == @data_set and covariance == @covariance")
    df_col, p_col = MMRM_DF[df_method]
    for g in golden.to_dict("records"):
        if g["kind"] == "fit":
            assert out["reml_loglik"].iloc[0] == pytest.approx(g["estimate"], rel=1e-6)
            continue
        r = out.loc[g["term"]]
        assert r["kind"] == g["kind"]
        assert r["estimate"] == pytest.approx(g["estimate"], rel=MIXED_REL, abs=1e-9), g["term"]
        assert r["se"] == pytest.approx(g["se"], rel=MIXED_REL), g["term"]
        assert r["df"] == pytest.approx(g[df_col], rel=MIXED_REL), g["term"]
        if df_method == "satterthwaite":
            assert r["ci_low"] == pytest.approx(g["ci_low"], rel=MIXED_REL)
            assert r["ci_high"] == pytest.approx(g["ci_high"], rel=MIXED_REL)
        if g["term"] in ("Intercept", "treated", "difference at baseline"):
            assert math.isnan(r["p_value"])
        else:
            assert r["p_value"] == pytest.approx(g[p_col], abs=P_ABS), g["term"]
