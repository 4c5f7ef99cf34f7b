"""Tests for lungtrial.stats._plan_outcomes: a lab ANCOVA outcome notes its censored values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plan_cases import PRIMARY, REF, TRT, _censored_labs, plan_of


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
