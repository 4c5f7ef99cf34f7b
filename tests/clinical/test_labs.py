"""Tests for lungtrial.clinical._labs: lab values (censoring), validation, tolerance and the wide layout."""

from __future__ import annotations

import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

from clinical_sheets import VISITS, read, write


@pytest.mark.parametrize(
    "text, expected",
    [("12.5", (12.5, "")), ("<0.5", (0.5, "<")), ("> 1000", (1000.0, ">")), ("<=3", (3.0, "<")),
     ("≥7", (7.0, ">")), ("1e3", (1000.0, "")), (" -2 ", (-2.0, ""))],
)
def test_parse_value(text, expected):
    assert clinical.parse_value(text) == expected


@pytest.mark.parametrize("text", ["abc", "1,5", "<", "5 mg", "<<2"])
def test_parse_value_rejects(text):
    with pytest.raises(ValueError):
        clinical.parse_value(text)


def test_censored_values_keep_their_limit_in_canonical_unit(tmp_path, subjects, catalog):
    labs, dropped = read(
        tmp_path,
        subjects,
        catalog,
        """
S1,2020-02-03 08:00,CRP,<0.05,mg/dL
S1,2020-02-03 08:00,IL-6,>1000,pg/mL
S1,2020-02-04 08:00,IL-6,,pg/mL
S1,2020-02-05 08:00,IL-6,35,pg/mL
""",
    )
    crp = labs[labs["analyte"] == "crp"].iloc[0]
    assert crp["censored"] == "<" and crp["value"] == pytest.approx(0.5)
    il6 = labs[labs["analyte"] == "il6"].set_index("datetime")
    assert il6.loc["2020-02-03 08:00", "censored"] == ">" and il6.loc["2020-02-03 08:00", "value"] == 1000
    assert il6.loc["2020-02-05 08:00", "censored"] == ""
    assert len(il6) == 2
    assert dropped[["source_row", "reason"]].values.tolist() == [[4, "empty value"]]


# -------------------------------------------------------------------------------------------------- validation
def test_every_problem_is_listed_with_file_and_row(tmp_path, subjects, catalog):
    with pytest.raises(InputError) as err:
        read(
            tmp_path,
            subjects,
            catalog,
            """
S1,2020-02-03 08:00,CRP,12,mg/L
S9,2020-02-03 08:00,CRP,12,mg/L
S1,03/02/2020,CRP,12,mg/L
S1,2020-02-04 08:00,CRP,twelve,mg/L
S1,2020-02-04 09:00,Ferritinn,12,ng/mL
S1,2020-02-04 10:00,CRP,12,mmol/L
S1,2019-12-01 08:00,CRP,12,mg/L
S1,2020-02-03 08:00,C-reactive protein,13,mg/L
S1,2020-02-04 10:00,IL-6,12,
""",
        )
    msg = str(err.value)
    assert "labs.csv, row 3: subject_id 'S9' (expected a subject_id of the subjects sheet)" in msg
    assert "labs.csv, row 4: datetime '03/02/2020' (expected an ISO date" in msg
    assert "labs.csv, row 5: value 'twelve' (expected a number or a censored number" in msg
    assert "labs.csv, row 6: analyte 'Ferritinn' (expected a name or synonym" in msg
    assert "labs.csv, row 7: unit 'mmol/L' (expected a unit of the units table for crp)" in msg
    assert "labs.csv, row 8: datetime '2019-12-01 08:00' (expected a date from admission" in msg
    assert "labs.csv, row 2: a second CRP value for subject S1 at 2020-02-03 08:00" in msg
    assert "labs.csv, row 9: a second CRP value" in msg
    assert "labs.csv, row 10: unit (empty)" in msg
    assert msg.startswith("9 problem(s)")
    assert msg.index("row 2:") < msg.index("row 3:") < msg.index("row 10:")


def test_unknown_analyte_or_unit_can_be_dropped_with_a_warning(tmp_path, subjects, catalog, caplog):
    labs, dropped = read(
        tmp_path,
        subjects,
        catalog,
        """
S1,2020-02-03 08:00,CRP,12,mg/L
S1,2020-02-04 09:00,Ferritinn,12,ng/mL
S1,2020-02-04 10:00,CRP,12,mmol/L
""",
        on_unknown="warn",
    )
    assert len(labs) == 1
    assert dropped[["source_row", "analyte", "reason"]].values.tolist() == [
        [3, "Ferritinn", "unknown analyte"],
        [4, "CRP", "unknown unit"],
    ]
    assert "labs.csv, row 3: analyte 'Ferritinn'" in caplog.text


def test_warn_mode_still_raises_other_problems(tmp_path, subjects, catalog):
    with pytest.raises(InputError, match="row 3: subject_id 'S9'"):
        read(tmp_path, subjects, catalog, "S1,2020-02-03,CRP,1,mg/L\nS9,2020-02-03,CRP,1,mg/L", on_unknown="warn")


def test_lab_tolerance_and_follow_up_after_discharge(tmp_path, subjects, catalog):
    # S1: admitted 02-01, day 0 02-03, discharged 02-20; the day-28 visit window ends on day 35 (03-09)
    labs, _ = read(
        tmp_path,
        subjects,
        catalog,
        "S1,2020-01-31 08:00,CRP,1,mg/L\nS1,2020-03-02 08:00,CRP,1,mg/L\nS1,2020-03-10 23:00,CRP,1,mg/L",
    )
    assert len(labs) == 3
    with pytest.raises(InputError, match="row 2: datetime"):
        read(tmp_path, subjects, catalog, "S1,2020-01-30 08:00,CRP,1,mg/L")
    with pytest.raises(InputError, match="row 2: datetime"):
        read(tmp_path, subjects, catalog, "S1,2020-03-11 08:00,CRP,1,mg/L")


# ------------------------------------------------------------------------------------------ layouts and Excel
def test_wide_layout_is_converted(tmp_path, subjects, catalog):
    path = write(
        tmp_path / "wide.csv",
        """
subject_id,datetime,CRP [mg/dL],Lymphocytes [/uL],IL-6 [pg/mL]
S1,2020-02-03 08:00,1.5,800,<1.5
S1,2020-02-05 08:00,0.9,,3
""",
    )
    labs, dropped = clinical.read_labs([path], subjects, catalog, visits=VISITS)
    assert len(labs) == 5
    row = labs[(labs["analyte"] == "crp")].iloc[0]
    assert row["value"] == pytest.approx(15.0) and row["source_row"] == 2
    assert labs[labs["analyte"] == "il6"].iloc[0]["censored"] == "<"
    assert dropped[["source_row", "analyte", "reason"]].values.tolist() == [[3, "Lymphocytes", "empty value"]]


def test_wide_layout_errors_name_file_and_row(tmp_path, subjects, catalog):
    bad_header = write(tmp_path / "w1.csv", "subject_id,datetime,CRP\nS1,2020-02-03,1")
    with pytest.raises(InputError, match=r"w1.csv: wide lab table column\(s\) 'CRP' are not"):
        clinical.read_labs([bad_header], subjects, catalog)
    bad_value = write(tmp_path / "w2.csv", "subject_id,datetime,CRP [mg/L]\nS1,2020-02-03,1\nS1,2020-02-04,x")
    with pytest.raises(InputError, match=r"w2.csv, row 3: value 'x'"):
        clinical.read_labs([bad_value], subjects, catalog)
