"""The statistics agree with R (golden values computed by tests/fixtures/r/make_golden.R; R is not needed here).

Tolerances are the issue's: p values to 3 decimals, estimates to 1e-6 relative; mixed models: estimates to 1e-3
relative, p values to 3 decimals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungtrial import stats
from lungtrial.stats import hodges_lehmann, mann_whitney

FIX = Path(__file__).parent / "fixtures" / "r"
P_ABS = 5e-4  # p values to 3 decimals
REL = 1e-6  # estimates
MIXED_REL = 1e-3  # mixed-model estimates


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(FIX / name)


def _close(ours: float, theirs: float, rel: float) -> bool:
    if not np.isfinite(theirs) or not np.isfinite(ours):
        return (np.isnan(theirs) and np.isnan(ours)) or ours == theirs
    return ours == pytest.approx(theirs, rel=rel, abs=1e-12)


def _two_sample_sets():
    two = _read("two_sample.csv")
    return {
        s: (d.loc[d["group"] == "x", "value"].to_numpy(float), d.loc[d["group"] == "y", "value"].to_numpy(float))
        for s, d in two.groupby("set", sort=False)
    }


@pytest.mark.parametrize("row", _read("golden_wilcox.csv").to_dict("records"), ids=lambda r: r["set"])
def test_mann_whitney_and_hodges_lehmann_as_wilcox_test(row):
    x, y = _two_sample_sets()[row["set"]]
    u, p, method = mann_whitney(x, y)
    assert u == row["statistic"]
    assert p == pytest.approx(row["p_value"], abs=P_ABS)
    assert (method == "exact") == ("exact" in row["method"])
    est, lo, hi, _ = hodges_lehmann(x, y)
    for ours, theirs in ((est, row["estimate"]), (lo, row["ci_low"]), (hi, row["ci_high"])):
        assert _close(ours, theirs, REL), (ours, theirs)


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


@pytest.mark.parametrize("row", _read("golden_km.csv").to_dict("records"), ids=lambda r: r["set"])
def test_kaplan_meier_logrank_cox_as_survival(row):
    d = _read("km.csv").query("set == @row['set']")
    for arm in ("treatment", "reference"):
        a = d.loc[d["arm"] == arm]
        med, low, high = stats.km_median(a["time"], a["event"].astype(bool))
        for ours, key in ((med, f"median_{arm}"), (low, f"median_{arm}_low"), (high, f"median_{arm}_high")):
            assert _close(ours, row[key], REL), (key, ours, row[key])
    t, r = d.loc[d["arm"] == "treatment"], d.loc[d["arm"] == "reference"]
    chi2, p = stats.logrank(r["time"], r["event"].astype(bool), t["time"], t["event"].astype(bool))
    assert chi2 == pytest.approx(row["logrank_chi2"], rel=REL) and p == pytest.approx(row["logrank_p"], abs=P_ABS)
    hr = stats.cox_hazard_ratio(d["time"], d["event"].astype(bool), d["arm"] == "treatment")
    for key in ("hazard_ratio", "hr_ci_low", "hr_ci_high", "log_hr_se"):
        assert _close(hr[key], row[key], REL), key
    assert hr["hr_p_value"] == pytest.approx(row["hr_p_value"], abs=P_ABS)


def test_survival_table_median_midpoint_of_flat_stretch():
    km = _read("km.csv").query("set == 'flat05'")
    subjects = pd.DataFrame(
        {
            "subject_id": [f"S{i:02d}" for i in range(len(km))],
            "arm": km["arm"].to_numpy(),
            "days_to_discharge": km["time"].to_numpy(),
            "discharged": km["event"].astype(bool).to_numpy(),
        }
    )
    row = stats.survival(subjects, "reference", "treatment", 3).set_index("endpoint").loc["discharge"]
    golden = _read("golden_km.csv").set_index("set").loc["flat05"]
    assert row["median_treatment"] == 7.5 == golden["median_treatment"]  # not 7, the first time at 0.5
    assert row["hazard_ratio"] == pytest.approx(golden["hazard_ratio"], rel=REL)


def test_cox_not_estimable_without_events_in_an_arm():
    hr = stats.cox_hazard_ratio([1, 2, 3, 4, 5, 6], [True, True, True, False, False, False], [0, 0, 0, 1, 1, 1])
    assert math.isnan(hr["hazard_ratio"]) and "no events in the treatment arm" in hr["hr_note"]


def test_aalen_johansen_as_survfit_multistate():
    cr = _read("competing.csv")
    golden = _read("golden_cif.csv")
    for event in (1, 2):
        cif = stats.cumulative_incidence(cr["time"], cr["status"], event).set_index("time")["incidence"]
        ours = cif.reindex(golden["time"].astype(float)).to_numpy()
        np.testing.assert_allclose(ours, golden[f"incidence_{event}"], rtol=REL, atol=1e-12)


@pytest.mark.parametrize("row", _read("golden_gray.csv").to_dict("records"), ids=lambda r: f"{r['set']}-{r['cause']}")
def test_gray_test_as_cmprsk_cuminc(row):
    d = _read("competing_groups.csv").query("set == @row['set']")
    out = stats.gray_test(d["time"], d["status"], d["group"], event_of_interest=row["cause"])
    assert out["statistic"] == pytest.approx(row["statistic"], rel=REL)
    assert out["p_value"] == pytest.approx(row["p_value"], abs=P_ABS) and out["df"] == row["df"]


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
