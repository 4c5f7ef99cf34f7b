"""Tests for lungtrial.clinical._dictionary: the data dictionary of the clinical tables and the scans table's
metric and lab columns."""

from __future__ import annotations

import pandas as pd
import pytest

from lungtrial import clinical
from lungtrial.clinical._dictionary import _metric_entry


@pytest.mark.parametrize(
    "column, unit, words",
    [
        ("pct_ground_glass", "%", "ground glass as a percentage of the lung volume"),
        ("lung_volume_ml", "mL", "lung volume volume"),
        ("mean_hu", "HU", "mean attenuation of the lungs"),
        ("n_lesions", "count", "lesions"),
        ("largest_lesion_ml", "mL", "largest lesion"),
        ("severity_score", "points", "0-24"),
        ("kurtosis", "", "imaging metric kurtosis"),
    ],
)
def test_metric_entries_from_their_names(column, unit, words):
    meaning, got = _metric_entry(column)
    assert got == unit and words in meaning


def test_without_scans_the_scans_table_is_left_out(catalog):
    dictionary = clinical.data_dictionary(catalog)
    assert list(dictionary.columns) == ["column", "table", "meaning", "unit"]
    assert "scans" not in set(dictionary["table"])
    assert not dictionary.duplicated(["table", "column"]).any() and dictionary["meaning"].str.len().gt(0).all()


def test_scan_columns_lab_and_metric(catalog):
    lab = next(iter(catalog.labels))
    cols = [*clinical.SCAN_ID_COLUMNS, "pct_opacity", lab, f"{lab}_censored", f"{lab}_gap_days"]
    dictionary = clinical.data_dictionary(catalog, pd.DataFrame(columns=cols))
    scans = dictionary.loc[dictionary["table"] == "scans"].set_index("column")
    assert list(scans.index) == cols
    assert scans.loc[lab, "unit"] == catalog.units[lab] and catalog.labels[lab] in scans.loc[lab, "meaning"]
    assert scans.loc[f"{lab}_censored", "unit"] == "" and scans.loc[f"{lab}_gap_days", "unit"] == "days"
    assert scans.loc["pct_opacity", "unit"] == "%"
