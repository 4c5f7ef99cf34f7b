"""Tests for lungtrial.stats._censoring: one rule for censored values, and when it changes the ranks."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lungtrial import stats

from stats_cases import REF, TRT


def test_censor_values_one_rule_for_all():
    values, flags = pd.Series([0.5, 3.0, 1000.0, 0.5]), pd.Series(["<", "", ">", None])
    assert stats.censor_values(values, flags, "half_limit").tolist() == [0.25, 3.0, 1000.0, 0.5]
    assert stats.censor_values(values, flags, "limit").tolist() == [0.5, 3.0, 1000.0, 0.5]
    assert stats.censor_values(values, flags, "limit_sqrt2").iloc[0] == pytest.approx(0.5 / math.sqrt(2))
    assert stats.censor_values(values, flags, "exclude").isna().tolist() == [True, False, True, False]
    assert stats.censored_for_model(values, flags).tolist() == stats.censor_values(values, flags).tolist()
    with pytest.raises(ValueError, match="censoring rule 'half'"):
        stats.censor_values(values, flags, "half")


def test_censoring_changes_ranks():
    # a single lower limit below every measured value: ranks are the same whatever the rule
    assert not stats.censoring_changes_ranks([0.5, 0.5, 1.0, 2.0], ["<", "<", "", ""])
    assert stats.censoring_changes_ranks([0.5, 0.4, 1.0], ["<", "", ""])  # a measured value below the limit
    assert stats.censoring_changes_ranks([0.5, 1.0, 2.0], ["<", "<", ""])  # two different limits
    assert stats.censoring_changes_ranks([10.0, 20.0], ["", ">"]) is False
    assert stats.censoring_changes_ranks([10.0, 30.0, 20.0], ["", "", ">"])


def test_censoring_sensitivity_reruns_under_each_rule():
    frame = pd.DataFrame({"arm": [REF] * 4 + [TRT] * 4, "value": [0.5, 1, 2, 3, 0.5, 0.5, 1, 2],
                          "censored": ["<", "", "", "", "<", "<", "", ""]})

    def analysis(d):
        ref, trt = d.loc[d["arm"] == REF, "y"], d.loc[d["arm"] == TRT, "y"]
        return {"mean_difference": trt.mean() - ref.mean()}

    out = stats.censoring_sensitivity(frame, analysis).set_index("censor_rule")
    assert list(out.index) == list(stats.CENSOR_RULES)
    assert out.loc["limit", "mean_difference"] == pytest.approx(1.0 - 1.625)
    assert out.loc["half_limit", "mean_difference"] == pytest.approx(0.875 - 1.5625)
    assert (out["n_censored"] == 3).all() and not out["censoring_changes_ranks"].any()


def test_censoring_at_the_limit_changes_ranks():
    """A measured value equal to a "<" limit ties with it under the rule "limit" and not under "half_limit"."""
    from lungtrial.stats._censoring import censoring_changes_ranks

    assert censoring_changes_ranks([0.5, 0.5, 2.0], ["", "<", ""])
    assert not censoring_changes_ranks([1.0, 0.5, 2.0], ["", "<", ""])
