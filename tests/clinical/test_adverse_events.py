"""Tests for lungtrial.clinical._adverse_events."""

from __future__ import annotations

import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

from clinical_sheets import write


def test_adverse_events(tmp_path, subjects):
    path = write(
        tmp_path / "ae.csv",
        "subject_id,day,term,grade,related_to_infusion\nS1,0,fever,1,true\nS2,3,rash,2,no",
    )
    ae = clinical.read_adverse_events(path, subjects)
    assert list(ae.columns) == list(clinical.AE_COLUMNS)
    assert ae["grade"].tolist() == [1, 2] and ae["related_to_infusion"].tolist() == [True, False]
    assert ae["arm"].tolist() == ["armA", "armB"]
    assert clinical.read_adverse_events("", subjects).empty
    bad = write(tmp_path / "bad.csv", "subject_id,day,term,grade,related_to_infusion\nS1,x,fever,7,perhaps")
    with pytest.raises(InputError) as err:
        clinical.read_adverse_events(bad, subjects)
    msg = str(err.value)
    assert "bad.csv, row 2: day 'x' (expected a study day number)" in msg
    assert "bad.csv, row 2: grade '7' (expected a grade 1-5)" in msg
    assert "bad.csv, row 2: related_to_infusion 'perhaps' (expected true or false)" in msg
