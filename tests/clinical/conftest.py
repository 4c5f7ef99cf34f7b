"""Fixtures of the lungtrial.clinical tests: the repository's lab catalogue and a two-subject sheet."""

from __future__ import annotations

import pytest

from lungtrial import clinical

from clinical_sheets import RESOURCES, write


@pytest.fixture(scope="module")
def catalog():
    return clinical.load_catalog(RESOURCES / "units.csv", RESOURCES / "analytes.csv")


@pytest.fixture
def subjects(tmp_path):
    path = write(
        tmp_path / "subjects.csv",
        """
subject_id,arm,admission_date,day0_date,discharge_date,age,sex,severity,mechanical_ventilation,oxygen_support,fever,cough,dyspnoea,days_to_symptom_resolution,infusion_adverse_event,name
S1,armA,2020-02-01,2020-02-03,2020-02-20,54,F,severe,false,low-flow,true,true,false,9,false,Jane Roe
S2,armB,2020-02-02,2020-02-02,,61,M,severe,true,high-flow,true,false,true,,false,John Doe
""",
    )
    return clinical.read_subjects(path)
