"""Tests for lungtrial.clinical._subjects: the subjects sheet and the subject table (outcomes, censoring)."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

from clinical_sheets import read, write


def test_subjects_sheet_validation(tmp_path):
    path = write(
        tmp_path / "subjects.csv",
        """
subject_id,arm,admission_date,day0_date,discharge_date,age,fever
S1,armA,2020-02-01,2020-02-03,2020-02-20,54,maybe
S1,armA,2020-02-05,2020-02-03,,-3,true
S3,,2020-02-01,2020-13-03,,50,false
""",
    )
    with pytest.raises(InputError) as err:
        clinical.read_subjects(path, {"fever": "bool"})  # the analysis plan reads fever as a yes/no outcome
    msg = str(err.value)
    assert "subjects.csv, row 2: fever 'maybe' (expected true or false)" in msg
    assert "subjects.csv, row 2: subject_id 'S1' (expected a value not used in another row)" in msg
    assert "subjects.csv, row 3: expected admission_date <= day0_date <= discharge_date" in msg
    assert "subjects.csv, row 3: age '-3' (expected a number >= 0)" in msg
    assert "subjects.csv, row 4: arm (empty) (expected a value)" in msg
    assert "subjects.csv, row 4: day0_date '2020-13-03' (expected an ISO date YYYY-MM-DD)" in msg
    # a column no plan names is not read, so its values are not checked
    with pytest.raises(InputError) as err:
        clinical.read_subjects(path)
    assert "fever" not in str(err.value)


def test_subject_table_outcomes_and_censoring(tmp_path, subjects, catalog):
    labs, _ = read(tmp_path, subjects, catalog, "S2,2020-02-12 10:00,CRP,5,mg/L")
    table = clinical.subject_table(subjects, labs).set_index("subject_id")
    # outcome columns the plan does not name are read as text; named ones by their kind
    planned = clinical.read_subjects(tmp_path / "subjects.csv", {"mechanical_ventilation": "bool"})
    planned = clinical.subject_table(planned, labs).set_index("subject_id")
    assert "name" not in table.columns
    s1, s2 = table.loc["S1"], table.loc["S2"]
    assert s1["length_of_stay_days"] == 19 and s1["days_to_discharge"] == 17 and s1["discharged"]
    assert s1["days_to_symptom_resolution"] == 9 and s1["symptom_resolved"]
    # S2: not discharged, symptoms not resolved -> censored at the last contact (lab on day 10)
    assert not s2["discharged"] and s2["days_to_discharge"] == 10 and np.isnan(s2["length_of_stay_days"])
    assert not s2["symptom_resolved"] and s2["days_to_symptom_resolution"] == 10
    assert s1["oxygen_support"] == "low-flow" and s1["mechanical_ventilation"] == "false"
    assert planned["mechanical_ventilation"].dtype == "boolean"
    assert planned["mechanical_ventilation"].tolist() == [False, True]
