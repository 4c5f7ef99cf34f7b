"""Tests for lungtrial.clinical._joins: labs nearest each scan, the scan table and its data dictionary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

from clinical_sheets import VISITS, read


def test_nearest_lab_within_window_with_gap():
    scans = pd.DataFrame(
        {"scan_id": ["A-1", "A-2", "B-1"], "subject_id": ["A", "A", "B"],
         "scan_date": pd.to_datetime(["2020-02-10", "2020-02-20", "2020-02-10"])}
    )
    labs = pd.DataFrame(
        {
            "subject_id": ["A", "A", "A", "A", "A", "B"],
            "analyte": ["crp", "crp", "crp", "il6", "il6", "crp"],
            "datetime": pd.to_datetime(
                ["2020-02-09 08:00", "2020-02-11 07:00", "2020-02-23 08:00", "2020-02-10 18:00",
                 "2020-02-10 06:00", "2020-02-13 08:00"]
            ),
            "value": [1.0, 2.0, 3.0, 40.0, 50.0, 9.0],
            "censored": ["", "", ">", "", "<", ""],
        }
    )
    near = clinical.nearest_labs(scans, labs, window_days=2).set_index(["scan_id", "analyte"])
    assert near.loc[("A-1", "crp"), ["value", "gap_days"]].tolist() == [1.0, -1]  # tie -> the earlier
    assert near.loc[("A-1", "il6"), ["value", "censored", "gap_days"]].tolist() == [50.0, "<", 0]  # first that day
    assert ("A-2", "crp") not in near.index  # 3 days away
    assert ("B-1", "crp") not in near.index
    near = clinical.nearest_labs(scans, labs, window_days=3).set_index(["scan_id", "analyte"])
    assert near.loc[("A-2", "crp"), ["value", "censored", "gap_days"]].tolist() == [3.0, ">", 3]


def test_scan_table_and_dictionary(tmp_path, subjects, catalog):
    labs, _ = read(
        tmp_path,
        subjects,
        catalog,
        "S1,2020-02-02 08:00,CRP,10,mg/L\nS1,2020-02-11 08:00,CRP,<1,mg/L\nS2,2020-02-02 09:00,IL-6,7,pg/mL",
    )
    metrics = pd.DataFrame(
        {
            "scan_id": ["S1-a", "S1-b", "S1-c", "S2-a"],
            "subject_id": ["S1", "S1", "S1", "S2"],
            "scan_date": ["2020-02-03", "2020-02-10", "2020-02-11", "2020-02-02"],
            "status": ["ok", "ok", "excluded", "ok"],
            "exclusion_reason": [np.nan, np.nan, "too few slices", np.nan],
            "pct_opacity": [12.0, 8.0, np.nan, 20.0],
            "ground_glass_ml": [300.0, 200.0, np.nan, 500.0],
        }
    )
    scans = clinical.scan_table(metrics, subjects, labs, VISITS, window_days=2)
    assert list(scans.columns[:10]) == [*clinical.SCAN_ID_COLUMNS, "pct_opacity", "ground_glass_ml"]
    s = scans.set_index("scan_id")
    assert s["study_day"].tolist() == [0, 7, 8, 0]
    assert s["visit"].tolist() == ["baseline", "day7", "", "baseline"]  # measured S1-b before excluded S1-c
    assert s.loc["S1-a", "crp"] == 10 and s.loc["S1-a", "crp_gap_days"] == -1
    assert s.loc["S1-b", "crp"] == 1 and s.loc["S1-b", "crp_censored"] == "<" and s.loc["S1-b", "crp_gap_days"] == 1
    assert np.isnan(s.loc["S2-a", "crp"]) and s.loc["S2-a", "crp_censored"] == "" and s.loc["S2-a", "il6"] == 7
    table = clinical.count_scans(clinical.subject_table(subjects, labs), scans)
    assert list(table.columns) == list(clinical.SUBJECT_COLUMNS) and table["n_scans"].tolist() == [3, 1]

    dictionary = clinical.data_dictionary(catalog, scans)
    entry = dictionary.set_index(["table", "column"])
    assert entry.loc[("scans", "crp"), "unit"] == "mg/L"
    assert entry.loc[("scans", "crp_gap_days"), "unit"] == "days"
    assert entry.loc[("scans", "pct_opacity"), "unit"] == "%"
    assert entry.loc[("scans", "ground_glass_ml"), "unit"] == "mL"
    for name, cols in (("subjects", clinical.SUBJECT_COLUMNS), ("labs", clinical.LAB_COLUMNS),
                       ("adverse_events", clinical.AE_COLUMNS)):
        assert dictionary.loc[dictionary["table"] == name, "column"].tolist() == list(cols)
    assert set(scans.columns) == set(dictionary.loc[dictionary["table"] == "scans", "column"])

    bad = metrics.assign(subject_id=["S1", "S1", "S1", "S7"])
    with pytest.raises(InputError, match="scan S2-a names subject 'S7'"):
        clinical.scan_table(bad, subjects, labs, VISITS, window_days=2)
