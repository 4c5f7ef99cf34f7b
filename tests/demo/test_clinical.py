"""Tests for lungtrial.demo.clinical: the demo's clinical sheets."""

from __future__ import annotations

import pandas as pd

from lungtrial.demo import design, write_clinical
from lungtrial.demo.clinical import LAB_UNITS, labs_table
from lungtrial.demo.design import SUBJECT_COLUMNS


def test_demo_subjects_sheet_carries_the_reported_rows():
    from lungtrial.demo.clinical import OXYGEN_LEVELS, subjects_table
    from lungtrial.demo.design import design

    a, b = subjects_table(design()), subjects_table(design())
    pd.testing.assert_frame_equal(a, b)
    assert set(a["oxygen_support"]) <= set(OXYGEN_LEVELS)
    assert (a.loc[a["mechanical_ventilation"] == "true", "oxygen_support"] == "mechanical ventilation").all()
    for col in ("low_flow_oxygen", "high_flow_oxygen", "fatigue"):
        assert set(a[col]) == {"true", "false"}, col
    assert (a.loc[a["oxygen_support"] == "low-flow", "low_flow_oxygen"] == "true").all()


# ----------------------------------------------------------------------------------------------- clinical
def test_labs_have_the_listed_mess():
    labs = labs_table(design())
    assert list(labs.columns) == ["subject_id", "datetime", "analyte", "value", "unit"]
    assert labs["datetime"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").all()
    assert set(labs["analyte"]) == set(LAB_UNITS)
    allowed = {(a, u) for a, u in LAB_UNITS.items()} | {("Lymphocyte count", "10*9/L"), ("CRP", "mg/dL")}
    assert set(zip(labs["analyte"], labs["unit"])) <= allowed
    assert 1 <= (labs["unit"] == "10*9/L").sum() <= 5
    assert labs.loc[labs["unit"] == "mg/dL", "subject_id"].nunique() == 1
    values = labs["value"].fillna("")
    assert (values == "").sum() == 1
    assert (values == ">1000").sum() == 1
    assert ((labs["analyte"] == "IL-6") & (values == "<1.5")).sum() >= 2
    assert ((labs["analyte"] == "IL-10") & (values == "<0.5")).sum() >= 2
    numeric = pd.to_numeric(values.where(~values.str.match(r"^[<>]?$|^[<>]")), errors="coerce")
    assert numeric.notna().sum() == len(labs) - (values.str.match(r"^[<>]") | (values == "")).sum()
    # labs track the opacity course: lymphocytes low and CRP high when opacity peaks (about day 7)
    d = design()
    day0 = pd.to_datetime(labs["subject_id"].map(d.subjects.set_index("subject_id")["day0_date"]))
    day = (pd.to_datetime(labs["datetime"]).dt.normalize() - day0).dt.days
    lab = labs.assign(day=day, num=numeric)
    lym = lab[lab["analyte"] == "Lymphocyte count"].groupby("day")["num"].median()
    assert lym.loc[6:8].mean() < lym.loc[27:29].mean()
    igg = lab[lab["analyte"] == "IgG"].groupby("day")["num"].median()
    assert igg.loc[-1:0].mean() < igg.loc[27:29].mean()


def test_write_clinical_sheets(tmp_path):
    d = design(n_per_arm=4, seed=3)
    write_clinical(d, tmp_path)
    subjects = pd.read_csv(tmp_path / "subjects.csv", dtype=str, keep_default_na=False)
    # the design's columns, then the outcomes the analysis plan reads besides them
    plan_columns = ["low_flow_oxygen", "high_flow_oxygen", "fatigue", "days_to_death"]
    assert list(subjects.columns) == SUBJECT_COLUMNS + plan_columns
    for col in ("low_flow_oxygen", "high_flow_oxygen", "fatigue"):
        assert set(subjects[col]) <= {"true", "false"}
    highest = subjects.set_index("subject_id")["oxygen_support"]
    assert set(highest) <= {"none", "low-flow", "high-flow", "mechanical ventilation"}
    ventilated = subjects.loc[subjects["mechanical_ventilation"] == "true", "subject_id"]
    assert (highest[ventilated] == "mechanical ventilation").all()
    assert (subjects["days_to_death"] == "").all() and subjects["discharge_date"].ne("").all()  # all discharged alive
    for col in ("mechanical_ventilation", "fever", "cough", "dyspnoea", "infusion_adverse_event"):
        assert set(subjects[col]) <= {"true", "false"}
    ae = pd.read_csv(tmp_path / "adverse_events.csv", dtype=str)
    assert list(ae.columns) == ["subject_id", "day", "term", "grade", "related_to_infusion"]
    assert len(ae) >= 1 and ae["grade"].astype(int).between(1, 5).all()
    assert set(ae["related_to_infusion"]) <= {"true", "false"}
    related = set(ae.loc[ae["related_to_infusion"] == "true", "subject_id"])
    assert related == set(subjects.loc[subjects["infusion_adverse_event"] == "true", "subject_id"])
    labs = pd.read_csv(tmp_path / "labs.csv", dtype=str, keep_default_na=False)
    assert (labs["value"] == "").sum() == 1
