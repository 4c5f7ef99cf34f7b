"""Tests for lungtrial.stats._survival: medians, Cox hazard ratios, cumulative incidence and Gray's test,
by hand and as R's survival and cmprsk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lungtrial import stats

from r_golden import P_ABS, REL, _close, _read


def test_km_median_midpoint_of_flat_stretch():
    # 10 subjects, events at 1, 2, 4, 5, 7 (S = 0.5 from day 7), next event at 8: median 7.5 as R, not 7
    med, _, _ = stats.km_median([1, 2, 4, 5, 7, 8, 9, 11, 12, 14], [True] * 10)
    assert med == 7.5
    med, _, _ = stats.km_median([1, 2, 3, 4], [True, False, False, False])
    assert math.isnan(med)  # the curve never falls to 0.5


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
