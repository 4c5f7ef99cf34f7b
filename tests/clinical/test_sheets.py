"""Tests for lungtrial.clinical._sheets: sheet schemas, row checks and Excel input."""

from __future__ import annotations

import pandas as pd
import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

from clinical_sheets import VISITS, write


@pytest.mark.parametrize("sheet", ["subjects", "scans"])
def test_sheet_schemas_describe_the_columns_read(sheet):
    from jsonschema import Draft202012Validator

    schema = clinical.sheet_schema(sheet)
    Draft202012Validator.check_schema(schema)
    columns = clinical.SHEET_SUBJECT_COLUMNS if sheet == "subjects" else clinical.SCAN_SHEET_COLUMNS
    assert tuple(schema["properties"]) == columns
    for name, prop in schema["properties"].items():  # every constrained column says what it expects
        constrained = set(prop) & {"pattern", "format", "minimum"} or prop["type"] != "string"
        assert not constrained or prop.get("expected"), name


def test_rows_are_checked_against_the_sheet_schema(tmp_path, monkeypatch):
    from lungtrial.clinical import _sheets

    path = write(
        tmp_path / "subjects.csv",
        """
subject_id,arm,admission_date,day0_date,sex
S1,armA,2020-02-01,2020-02-03,F
S2,armB,2020-02-01,2020-02-03,unknown
""",
    )
    assert list(clinical.read_subjects(path)["sex"]) == ["F", "unknown"]
    schema = _sheets.sheet_schema("subjects")
    schema["properties"]["sex"] |= {"enum": ["F", "M"], "expected": "F or M"}
    monkeypatch.setattr(_sheets, "_schema", lambda sheet: schema)
    with pytest.raises(InputError, match=r"^\S*subjects.csv, row 3: sex 'unknown' \(expected F or M\)$"):
        clinical.read_subjects(path)


def test_excel_input_with_study_days(tmp_path, subjects, catalog):
    path = tmp_path / "labs.xlsx"
    pd.DataFrame(
        {
            "Subject_ID": ["S1", "S1", "S2"],
            "study_day": [0, 7.5, -1],
            "analyte": ["CRP", "IgG", "D-dimer"],
            "value": ["12", "<2", 0.5],
            "unit": ["mg/L", "AU/mL", "ug/mL FEU"],
        }
    ).to_excel(path, index=False)
    labs, _ = clinical.read_labs([path], subjects, catalog, visits=VISITS)
    got = labs.set_index("analyte")
    assert got.loc["igg", "datetime"] == pd.Timestamp("2020-02-10 12:00")
    assert got.loc["igg", "study_day"] == pytest.approx(7.5) and got.loc["igg", "censored"] == "<"
    assert got.loc["d_dimer", "study_day"] == -1 and got.loc["d_dimer", "value"] == 0.5
    assert got.loc["crp", "source_row"] == 2 and got.loc["crp", "source_file"].endswith("labs.xlsx")


def test_excel_errors_name_the_row(tmp_path, subjects, catalog):
    path = tmp_path / "labs.xlsx"
    pd.DataFrame(
        {"subject_id": ["S1", "S1"], "datetime": [pd.Timestamp("2020-02-03"), "soon"], "analyte": ["CRP", "CRP"],
         "value": [1, 2], "unit": ["mg/L", "mg/L"]}
    ).to_excel(path, index=False)
    with pytest.raises(InputError, match=r"labs.xlsx, row 3: datetime 'soon'"):
        clinical.read_labs([path], subjects, catalog)
