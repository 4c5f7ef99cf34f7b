"""Tests for lungtrial.stats._fisher: Table 3's binary rows, published p values and R's fisher.test odds ratios."""

from __future__ import annotations

import pandas as pd
import pytest

from lungtrial import stats

from plan_cases import FIXTURES, PRIMARY, REF, TRT, plan_of


def table3_subjects() -> pd.DataFrame:
    """A subjects table with the model trial's Table 3 counts (9 per arm)."""
    expected = pd.read_csv(FIXTURES / "fisher_table3_expected.csv")
    rows = {"subject_id": [f"T{i}" for i in range(1, 10)] + [f"C{i}" for i in range(1, 10)],
            "arm": [TRT] * 9 + [REF] * 9}
    for r in expected.itertuples():
        rows[r.outcome] = [i < r.events_treatment for i in range(9)] + [i < r.events_reference for i in range(9)]
    return pd.DataFrame(rows)


def test_table3_binary_rows_match_published_p_and_r():
    expected = pd.read_csv(FIXTURES / "fisher_table3_expected.csv")
    outcomes = [{"name": o, "type": "binary", "column": o, "label": o} for o in expected["outcome"]]
    plan = plan_of(PRIMARY, *outcomes, multiplicity={"method": "none"})
    table = stats.binary_outcomes(table3_subjects(), None, plan.of_type("binary"), REF, TRT, 3).set_index("outcome")
    for exp in expected.itertuples():
        row = table.loc[exp.outcome]
        assert round(row["p_value"], 3) == pytest.approx(exp.published_p, abs=1e-9), exp.outcome
        assert row["p_value"] == pytest.approx(exp.p_value, rel=1e-9), exp.outcome
        # R's fisher.test finds the conditional MLE and its limits by uniroot, to an absolute tolerance of
        # .Machine$double.eps^0.25 = 1.2e-4: R itself is no closer than that
        for key, r_key in (("odds_ratio", "odds_ratio"), ("or_ci_low", "ci_low"), ("or_ci_high", "ci_high")):
            assert row[key] == pytest.approx(getattr(exp, r_key), rel=1e-3, abs=1.3e-4), (exp.outcome, key)
