"""Tests for lungtrial.clinical._scans: the scans sheet read (dates or study days, folders resolved against the
sheet's folder, sheet order). Its bad inputs (error messages naming file and row, never a folder) are in
tests/workflow/test_bad_inputs.py with the other sheets'."""

from __future__ import annotations

import pandas as pd
import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

from clinical_sheets import write


def test_dates_and_study_days(tmp_path, subjects):
    (tmp_path / "sheets").mkdir()
    path = write(
        tmp_path / "sheets" / "scans.csv",
        """
SCAN_ID,subject_id,scan_date,study_day,dicom_dir,comment
S2-D7,S2,2020-02-09,,dicom/b,anything
S1-D0,S1,,0,/data/a,
S1-D5,S1,2020-02-08,5,../c,
""",
    )
    scans = clinical.read_scans(path, subjects)
    assert list(scans.columns) == ["scan_id", "subject_id", "scan_date", "study_day", "dicom_dir", "source_file",
                                   "source_row"]
    assert scans["scan_id"].tolist() == ["S2-D7", "S1-D0", "S1-D5"]  # sheet order; headers in any case
    assert scans["study_day"].tolist() == [7, 0, 5]  # S2's day 0 is 2020-02-02, S1's 2020-02-03
    assert scans["scan_date"].tolist() == [pd.Timestamp(d) for d in ("2020-02-09", "2020-02-03", "2020-02-08")]
    assert scans["dicom_dir"].tolist() == [str(tmp_path / "sheets/dicom/b"), "/data/a", str(tmp_path / "c")]
    assert scans["source_row"].tolist() == [2, 3, 4] and "comment" not in scans.columns


def test_date_and_study_day_must_agree(tmp_path, subjects):
    path = write(tmp_path / "scans.csv", "scan_id,subject_id,scan_date,study_day,dicom_dir\nS1-D5,S1,2020-02-08,4,a\n")
    with pytest.raises(InputError, match="row 2: expected scan_date and study_day to agree"):
        clinical.read_scans(path, subjects)


def test_sheet_columns_are_its_schema():
    assert clinical.SCAN_SHEET_COLUMNS == tuple(clinical.sheet_schema("scans")["properties"])
    assert {"scan_id", "subject_id", "scan_date", "study_day", "dicom_dir"} <= set(clinical.SCAN_SHEET_COLUMNS)
