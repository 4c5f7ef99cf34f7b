"""Tests for lungtrial.stats._multiplicity: Holm and Benjamini-Hochberg, families adjusted separately."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungtrial import stats


def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, np.nan]
    np.testing.assert_allclose(stats.adjust(p, "holm"), [0.03, 0.06, 0.06, np.nan])
    np.testing.assert_allclose(stats.adjust(p, "benjamini-hochberg"), [0.03, 0.04, 0.04, np.nan])
    np.testing.assert_allclose(stats.adjust(p, "none"), p)


def test_families_are_adjusted_separately_and_primary_comes_first():
    plan = stats.Plan(outcomes=(), visits=("baseline",), multiplicity={"b": "benjamini-hochberg"})
    table = pd.DataFrame({"family": ["a", "b", "a", "b", "primary"], "p_value": [0.01, 0.01, 0.04, 0.04, 0.2]})
    out = stats.adjust_families(table, plan)
    np.testing.assert_allclose(out["p_adjusted"], [0.02, 0.02, 0.04, 0.04, 0.2])
    assert out["adjustment"].tolist() == [
        "Holm, 2 tests in family", "Benjamini-Hochberg (false discovery rate), 2 tests in family",
        "Holm, 2 tests in family", "Benjamini-Hochberg (false discovery rate), 2 tests in family",
        "none needed (only test in family)",
    ]
