"""Unit tests of lungtrial.clinical: units, synonyms, censoring, validation, layouts, alignment, visits."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungtrial import clinical
from lungtrial.errors import InputError

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
VISITS = {"baseline": [-3, 1], "day7": [5, 10], "day14": [11, 18], "day28": [24, 35]}


@pytest.fixture(scope="module")
def catalog():
    return clinical.load_catalog(RESOURCES / "units.csv", RESOURCES / "analytes.csv")


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


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


def labs_file(tmp_path, rows: str, name="labs.csv") -> Path:
    return write(tmp_path / name, "subject_id,datetime,analyte,value,unit\n" + rows.strip())


def read(tmp_path, subjects, catalog, rows, **kw):
    return clinical.read_labs([labs_file(tmp_path, rows)], subjects, catalog, visits=VISITS, **kw)


# ------------------------------------------------------------------------------------------- units and names
def test_unit_conversion_and_synonyms(tmp_path, subjects, catalog):
    labs, dropped = read(
        tmp_path,
        subjects,
        catalog,
        """
S1,2020-02-03 08:00,Lymphocyte count,0.8,10^9/L
S1,2020-02-04 08:00,lymphocytes,900,/µL
S1,2020-02-05 08:00,LYM#,1.1,x10*9/l
S1,2020-02-03 08:00,CRP,2.5,mg/dL
S1,2020-02-04 08:00,C-reactive protein,30,mg/L
S1,2020-02-03 08:00,TNF-α,12,pg/mL
S1,2020-02-03 08:00,D-dimer,850,ng/mL FEU
S1,2020-02-04 08:00,D-Dimers,1.2,mg/L FEU
S1,2020-02-03 08:00,Interleukin 6,40,ng/L
S1,2020-02-03 08:00,Creatinine,1.0,mg/dL
S1,2020-02-03 08:00,P/F ratio,40,kPa
""",
    )
    assert dropped.empty
    got = labs.set_index(["analyte", "datetime"])["value"]
    t = pd.Timestamp
    assert got[("lymphocytes", t("2020-02-03 08:00"))] == pytest.approx(0.8)
    assert got[("lymphocytes", t("2020-02-04 08:00"))] == pytest.approx(0.9)
    assert got[("lymphocytes", t("2020-02-05 08:00"))] == pytest.approx(1.1)
    assert got[("crp", t("2020-02-03 08:00"))] == pytest.approx(25.0)
    assert got[("crp", t("2020-02-04 08:00"))] == pytest.approx(30.0)
    assert got[("tnf_alpha", t("2020-02-03 08:00"))] == pytest.approx(12.0)
    assert got[("d_dimer", t("2020-02-03 08:00"))] == pytest.approx(0.85)
    assert got[("d_dimer", t("2020-02-04 08:00"))] == pytest.approx(1.2)
    assert got[("il6", t("2020-02-03 08:00"))] == pytest.approx(40.0)
    assert got[("creatinine", t("2020-02-03 08:00"))] == pytest.approx(88.42)
    assert got[("pao2_fio2", t("2020-02-03 08:00"))] == pytest.approx(300.02, abs=0.01)
    units = labs.drop_duplicates("analyte").set_index("analyte")["unit"]
    assert units["lymphocytes"] == "10^9/L" and units["crp"] == "mg/L" and units["d_dimer"] == "ug/mL FEU"
    assert set(labs["analyte_label"]) >= {"Lymphocytes", "CRP", "TNF-alpha", "D-dimer"}
    assert list(labs.columns) == list(clinical.LAB_COLUMNS)
    assert (labs["arm"] == "armA").all()


def test_catalog_rejects_conflicting_synonym(tmp_path):
    analytes = write(tmp_path / "a.csv", "analyte,label,synonyms\ncrp,CRP,\nil6,IL-6,CRP")
    units = write(tmp_path / "u.csv", "analyte,unit,factor,canonical\ncrp,mg/L,1,true\nil6,pg/mL,1,true")
    with pytest.raises(InputError, match=r"a.csv, row 3: synonym 'CRP' already names crp"):
        clinical.load_catalog(units, analytes)


def test_catalog_needs_one_canonical_unit(tmp_path):
    analytes = write(tmp_path / "a.csv", "analyte,label,synonyms\ncrp,CRP,")
    units = write(tmp_path / "u.csv", "analyte,unit,factor,canonical\ncrp,mg/dL,10,false")
    with pytest.raises(InputError, match="no canonical unit for analyte crp"):
        clinical.load_catalog(units, analytes)


# --------------------------------------------------------------------------------------------------- censoring
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


# -------------------------------------------------------------------------------------- visits and alignment
def test_visit_windows_validation():
    assert [w[0] for w in clinical.visit_windows(VISITS)] == ["baseline", "day7", "day14", "day28"]
    with pytest.raises(ValueError, match="overlap"):
        clinical.visit_windows({"a": [0, 5], "b": [5, 9]})
    with pytest.raises(ValueError, match="clinical.visits.a"):
        clinical.visit_windows({"a": [5, 0]})


def test_assign_visits_picks_one_row_per_window():
    windows = clinical.visit_windows(VISITS)
    frame = pd.DataFrame(
        {
            "subject_id": ["A"] * 8 + ["B"] * 2,
            "study_day": [-2.0, 0.3, 1.0, 6.0, 8.0, 19.0, 30.0, 40.0, 1.0, 9.0],
        }
    )
    visits = clinical.assign_visits(frame, windows, by=["subject_id"])
    # dated rows (no time of day): baseline = the last dated on or before day 0, never after the first dose; A's
    # 0.3 is on day 0, B's only row in the window is on day 1 (after the dose: no baseline); day7 = closest to 7,
    # tie 6 vs 8 -> earlier
    assert visits.tolist() == ["", "baseline", "", "day7", "", "", "day28", "", "", "day7"]
    # timed rows with the first dose at 06:00 (0.25): A's 07:12 sample (0.3) follows it, its day -2 one is baseline
    timed = clinical.assign_visits(frame, windows, by=["subject_id"], first_dose_day=0.25)
    assert timed.tolist()[:3] == ["baseline", "", ""]
    prefer = pd.Series([True, False, True, False, True, True, True, True, True, True])
    visits = clinical.assign_visits(frame, windows, by=["subject_id"], prefer=prefer)
    assert visits.tolist()[:5] == ["baseline", "", "", "", "day7"]


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


def test_write_table_csv_and_parquet(tmp_path, subjects, catalog):
    # day 0 at 08:30, before a first dose at 09:00: the baseline value
    labs, _ = read(tmp_path, subjects, catalog, "S1,2020-02-03 08:30,CRP,<1,mg/L", first_dose_day=0.375)
    clinical.write_table(labs, tmp_path / "out" / "labs.csv", tmp_path / "out" / "labs.parquet")
    text = (tmp_path / "out" / "labs.csv").read_text()
    assert "2020-02-03 08:30" in text
    back = pd.read_parquet(tmp_path / "out" / "labs.parquet")
    pd.testing.assert_frame_equal(back, labs, check_dtype=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labs.csv", "labs.parquet"]
    coverage = clinical.lab_coverage(labs)
    assert coverage[["visit", "n_subjects", "n_censored"]].values.tolist() == [["any", 1, 1], ["baseline", 1, 1]]


# ------------------------------------------------------------------------------------------------- workflow
@pytest.mark.workflow
def test_rules_build_tables_and_only_the_join_reruns_for_a_new_scan(tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    write(
        tmp_path / "Snakefile",
        f"""
configfile: "config.yaml"
include: "{repo}/workflow/rules/common.smk"
include: "{repo}/workflow/rules/clinical.smk"
rule all:
    input: clinical_targets()
""",
    )
    write(
        tmp_path / "config.yaml",
        f"""
demo: false
sheets: {{subjects: subjects.csv, scans: scans.csv, labs: [labs.csv], adverse_events: ae.csv}}
clinical:
  units: {RESOURCES / "units.csv"}
  analytes: {RESOURCES / "analytes.csv"}
  on_unknown: error
  lab_window_days: 2
  visits: {{baseline: [-3, 1], day7: [5, 10]}}
imaging: {{series: {{}}, lesion_masks: {{}}}}
stats: {{reference_arm: armA, treatment_arm: armB}}
""",
    )
    write(
        tmp_path / "subjects.csv",
        "subject_id,arm,admission_date,day0_date,discharge_date\nP1,armA,2020-02-01,2020-02-02,2020-02-20\n"
        "P2,armB,2020-02-01,2020-02-02,",
    )
    write(tmp_path / "scans.csv", "scan_id,subject_id,scan_date,dicom_dir\nP1-a,P1,2020-02-02,x")
    labs_file(tmp_path, "P1,2020-02-02 07:00,CRP,<0.5,mg/dL\nP1,2020-02-09 07:00,CRP,12,mg/L")
    write(tmp_path / "ae.csv", "subject_id,day,term,grade,related_to_infusion\nP1,0,fever,1,true")
    metrics = tmp_path / "results" / "imaging" / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    write(metrics, "scan_id,subject_id,scan_date,status,exclusion_reason,pct_opacity\nP1-a,P1,2020-02-02,ok,,20")

    def snakemake(*args):
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True)
        return done.stdout + done.stderr

    snakemake()
    tables = tmp_path / "results" / "tables"
    scans = pd.read_parquet(tables / "scans.parquet")
    assert scans[["visit", "crp", "crp_censored", "crp_gap_days"]].values.tolist() == [["baseline", 5.0, "<", 0.0]]
    assert pd.read_csv(tables / "subjects.csv")["n_scans"].tolist() == [1, 0]
    assert (tables / "data_dictionary.csv").exists() and (tables / "adverse_events.parquet").exists()

    with metrics.open("a") as f:
        f.write("P1-b,P1,2020-02-10,ok,,10\n")
    plan = snakemake("--dry-run").split("Job stats:")[1]
    assert "clinical_scans" in plan and "clinical_tables" not in plan
    snakemake()
    assert pd.read_csv(tables / "scans.csv")["crp_gap_days"].tolist() == [0.0, -1.0]
