"""Tests for lungtrial.stats._run: the analysis plan run on small tables (an imaging primary endpoint, a binary and
a time-to-event secondary), the summary rows, the p values adjusted within families, Table 1 beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lungtrial import clinical, stats
from lungtrial.errors import InputError
from lungtrial.stats._run import _ordered, stats_fmt

from stats_cases import REF, TRT, _plan, _subjects

SECONDARY = [
    {"name": "fever", "type": "binary", "column": "fever", "label": "Fever", "role": "secondary"},
    {"name": "discharge", "type": "time-to-event", "column": "days_to_discharge", "event": "discharged",
     "label": "Discharge", "role": "secondary"},
]


@pytest.fixture(scope="module")
def trial():
    subjects = _subjects()
    rng = np.random.default_rng(0)
    rows = []
    for s in subjects.itertuples():
        b = 10 + rng.normal(0, 2)
        for visit, day in (("baseline", 0), ("day7", 7)):
            drop = (3 if s.arm == TRT else 1) * (day > 0)
            rows.append({"subject_id": s.subject_id, "arm": s.arm, "visit": visit, "study_day": day, "status": "ok",
                         "pct_opacity": b - drop + rng.normal(0, 1)})
    labs = pd.DataFrame(columns=list(clinical.LAB_COLUMNS))
    return _plan(*SECONDARY), subjects, labs, pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables(trial):
    plan, subjects, labs, scans = trial
    return stats.analysis_tables(plan, subjects, labs, scans, None, REF, TRT, 3)


def test_outcomes_primary_first_then_in_plan_order(tables):
    out = tables["outcomes"]
    assert out["outcome"].tolist() == ["opacity", "fever", "discharge"]
    assert out["role"].tolist() == ["primary", "secondary", "secondary"]
    assert out.loc[0, "adjustment"] == "none needed (only test in family)"
    assert out.loc[0, "p_adjusted"] == out.loc[0, "p_value"]


def test_secondary_family_adjusted_by_holm(tables):
    sec = tables["outcomes"].iloc[1:]
    p = np.sort(sec["p_value"].to_numpy())
    holm = np.maximum.accumulate(np.minimum(1.0, p * np.array([2, 1])))
    assert np.allclose(np.sort(sec["p_adjusted"].to_numpy()), holm)
    assert set(sec["adjustment"]) == {"Holm, 2 tests in family"}


def test_summary_rows_say_what_was_estimated(tables):
    out = tables["outcomes"].set_index("outcome")
    assert out.loc["fever", "effect"].startswith("odds ratio")
    assert out.loc["discharge", "effect"].startswith("hazard ratio")
    assert out.loc["discharge", "summary_reference"].startswith("21/21 events, median")
    assert out.loc["opacity", "summary_treatment"].startswith("mean change -")
    assert out.loc["opacity", "estimate"] < 0  # the treated arm's opacity drops more


def test_detailed_tables_carry_role_family_and_adjusted_p(tables):
    for name in ("binary", "continuous", "imaging_change", "survival"):
        assert list(tables[name].columns[:4]) == ["role", "family", "outcome", "label"], name
        assert {"p_value", "p_adjusted", "adjustment"} <= set(tables[name].columns), name
    assert tables["continuous"].empty and "competing_risk" not in tables
    survival = tables["survival"].set_index("outcome")
    assert survival.loc["discharge", "p_adjusted"] == tables["outcomes"].set_index("outcome").loc["discharge",
                                                                                                 "p_adjusted"]


def test_primary_row_has_the_model_details(tables):
    primary = tables["primary"]
    assert len(primary) == 1 and primary.loc[0, "outcome"] == "opacity"
    assert {"baseline_slope", "std_error", "df"} <= set(primary.columns)
    assert primary.loc[0, "df"] == 42 - 3  # ANCOVA: change ~ baseline + arm


def test_table1_beside_the_comparisons(tables, trial):
    assert "table1" in tables and not tables["table1"].empty
    plan, subjects, labs, scans = trial
    with pytest.raises(InputError, match="Arm C"):
        stats.analysis_tables(plan, subjects, labs, scans, None, REF, "Arm C", 3)


def test_stats_fmt_and_role_order():
    assert stats_fmt(0.123456) == "0.123" and stats_fmt(23) == "23.0"
    assert stats_fmt(None) == "NA" and stats_fmt("n/a") == "NA"
    table = pd.DataFrame({"role": ["exploratory", "secondary", "primary", "secondary"], "x": [1, 2, 3, 4]})
    assert _ordered(table)["x"].tolist() == [3, 2, 4, 1]
    assert _ordered(pd.DataFrame({"x": [2, 1]}))["x"].tolist() == [2, 1]
