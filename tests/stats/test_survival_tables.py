"""Tests for lungtrial.stats._survival_tables: Kaplan-Meier, log-rank and the survival table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lungtrial import stats

from r_golden import REL, _read
from stats_cases import MP6, MP6_EVENT, PLACEBO, REF, TRT, _subjects


def test_kaplan_meier_known_times():
    km = stats.kaplan_meier([1, 2, 3, 4, 5], [True, True, False, True, True])
    s = dict(zip(km["time"], km["survival"]))
    # 4/5; 4/5 * 3/4; censored at 3; 0.6 * 1/2; 0
    assert s[1.0] == pytest.approx(0.8) and s[2.0] == pytest.approx(0.6)
    assert s[3.0] == pytest.approx(0.6) and s[4.0] == pytest.approx(0.3) and s[5.0] == pytest.approx(0.0)


def test_logrank_freireich():
    chi2, p = stats.logrank(MP6, np.array(MP6_EVENT, bool), PLACEBO, [True] * 21)
    assert chi2 == pytest.approx(16.79, abs=0.01)
    assert p == pytest.approx(4.17e-5, rel=0.01)


def test_survival_table():
    out = stats.survival(_subjects(), REF, TRT, min_per_arm=3).set_index("endpoint")
    assert list(out.index) == ["discharge"]  # no symptom columns in this frame
    r = out.loc["discharge"]
    assert (r["n_reference"], r["events_reference"], r["n_treatment"], r["events_treatment"]) == (21, 21, 21, 9)
    assert r["chi2"] == pytest.approx(16.79, abs=0.01)
    assert r["median_treatment"] == 23 and r["median_reference"] == 8


def test_logrank_without_events_is_no_test():
    chi2, p = stats.logrank([3, 5, 7], [False, False, False], [4, 6], [False, False])
    assert np.isnan(chi2) and np.isnan(p)


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
