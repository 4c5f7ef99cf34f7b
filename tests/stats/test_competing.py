"""Tests for lungtrial.stats._competing: the competing risk of death."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lungtrial import stats
from lungtrial.errors import InputError

from stats_cases import REF, TRT, _plan


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
