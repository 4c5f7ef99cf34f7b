"""Tests for lungtrial.stats._ancova: ANCOVA as R's lm (tests/fixtures/r/ancova.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lungtrial import stats

from plan_cases import FIXTURES, REF, TRT


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
