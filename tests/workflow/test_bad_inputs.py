"""Bad inputs end in one clear line: the file, the row (the spreadsheet's: header = row 1), the column, the value and
what was expected; no traceback; nothing of an earlier run lost.

Most cases call the readers the workflow calls when it starts (``workflow/rules/common.smk``); three run Snakemake
to show what the user sees.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lungtrial import clinical
from lungtrial.errors import MAX_LISTED, InputError

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "resources"

SUBJECTS = """subject_id,arm,admission_date,day0_date,discharge_date
S1,control,2020-02-01,2020-02-02,2020-02-20
S2,treated,2020-02-03,2020-02-04,
"""
SCANS = """scan_id,subject_id,scan_date,dicom_dir
S1-D0,S1,2020-02-02,dicom/S1-D0
S1-D7,S1,2020-02-09,dicom/S1-D7
S2-D0,S2,2020-02-04,dicom/S2-D0
"""
LABS = """subject_id,datetime,analyte,value,unit
S1,2020-02-02 08:00,CRP,12.5,mg/L
S1,2020-02-09 08:00,CRP,4,mg/L
S2,2020-02-04 08:00,Lymphocytes,0.8,10^9/L
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def catalog():
    return clinical.load_catalog(RESOURCES / "units.csv", RESOURCES / "analytes.csv")


@pytest.fixture
def subjects(tmp_path):
    return clinical.read_subjects(write(tmp_path / "subjects.csv", SUBJECTS))


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        call(*args, **kwargs)
    return str(err.value)


def one_line(message: str, where: str) -> str:
    """The message is one line that starts with ``where`` (file and row)."""
    assert "\n" not in message, message
    assert message.startswith(where), message
    assert "Traceback" not in message
    return message


# ------------------------------------------------------------------------------------------- the cases
@pytest.mark.parametrize(
    "value, shown",
    [("pos", "value 'pos'"), ('"1,2"', "value '1,2'"), ("12.5 mg", "value '12.5 mg'")],
)
def test_lab_value_that_is_not_a_number(tmp_path, subjects, catalog, value, shown):
    path = write(tmp_path / "labs.csv", LABS.replace(",4,", f",{value},"))
    msg = error_of(clinical.read_labs, [path], subjects, catalog)
    one_line(msg, f"{path}, row 3: {shown} (expected a number or a censored number")


@pytest.mark.parametrize("value", ["-4", "<-0.5", "-1e3"])
def test_lab_value_that_is_negative(tmp_path, subjects, catalog, value):
    path = write(tmp_path / "labs.csv", LABS.replace(",4,", f",{value},"))
    msg = error_of(clinical.read_labs, [path], subjects, catalog)
    one_line(msg, f"{path}, row 3: value '{value}' (expected a number >= 0")


def test_lab_value_minus_zero_and_unknown_rows_are_not_negative_errors(tmp_path, subjects, catalog):
    """-0 is not below 0; a negative value of an unknown analyte or unit gets that row's own message only (and with
    on_unknown warn the row is dropped, not refused)."""
    path = write(tmp_path / "labs.csv", LABS.replace(",4,", ",-0.0,"))
    clinical.read_labs([path], subjects, catalog)
    path = write(tmp_path / "labs.csv", LABS.replace("CRP,4,mg/L", "Base excess,-2,mmol/L"))
    msg = error_of(clinical.read_labs, [path], subjects, catalog)
    assert "expected a number >= 0" not in msg and "analyte" in msg
    labs = clinical.read_labs([path], subjects, catalog, on_unknown="warn")[0]
    assert len(labs) == 2


def test_lab_value_negative_where_the_analyte_is_signed(tmp_path, subjects, catalog):
    """An analyte that can be negative (signed = yes in the analytes table) takes a negative value; a signed
    cell that is not yes/no is an error naming the table and row."""
    analytes = (RESOURCES / "analytes.csv").read_text().splitlines()
    analytes[0] += ",signed"
    analytes = [line + ",yes" if line.startswith("crp,") else line for line in analytes]
    table = write(tmp_path / "analytes.csv", "\n".join(analytes) + "\n")
    signed = clinical.load_catalog(RESOURCES / "units.csv", table)
    assert signed.signed == {"crp"}
    path = write(tmp_path / "labs.csv", LABS.replace(",4,", ",-4,"))
    labs = clinical.read_labs([path], subjects, signed)[0]
    assert (labs["value"] == -4).sum() == 1
    write(table, "\n".join(a.replace(",yes", ",maybe") for a in analytes) + "\n")
    msg = error_of(clinical.load_catalog, RESOURCES / "units.csv", table)
    assert "signed 'maybe' is not yes or no" in msg and str(table) in msg


def test_lab_unit_unknown(tmp_path, subjects, catalog):
    path = write(tmp_path / "labs.csv", LABS.replace("4,mg/L", "4,furlongs"))
    msg = error_of(clinical.read_labs, [path], subjects, catalog)
    one_line(msg, f"{path}, row 3: unit 'furlongs' (expected a unit of the units table for crp)")


@pytest.mark.parametrize(
    "date", ["2020-02-30", "2020/02/02", "02.02.2020", "2020-02", "2020-02-02T08:00+01:00"]
)
def test_subject_date_not_a_calendar_iso_date(tmp_path, date):
    path = write(tmp_path / "subjects.csv", SUBJECTS.replace("2020-02-04,", f"{date},"))
    msg = error_of(clinical.read_subjects, path)
    one_line(msg, f"{path}, row 3: day0_date '{date}' (expected an ISO date YYYY-MM-DD)")


@pytest.mark.parametrize("date", ["2020/02/09", "2020-02-30"])
def test_scan_date_not_a_calendar_iso_date(tmp_path, subjects, date):
    path = write(tmp_path / "scans.csv", SCANS.replace("2020-02-09", date))
    msg = error_of(clinical.read_scans, path, subjects)
    one_line(msg, f"{path}, row 3: scan_date '{date}' (expected an ISO date YYYY-MM-DD)")


def test_scans_sheet_header_only_or_empty(tmp_path, subjects):
    path = write(tmp_path / "scans.csv", SCANS.splitlines()[0] + "\n")
    one_line(error_of(clinical.read_scans, path, subjects), f"{path}: no rows below the header")
    for text in ("", "\n\n", "# only a comment\n"):
        write(path, text)
        one_line(error_of(clinical.read_scans, path, subjects), f"{path}: the file is empty")


def test_duplicate_scan_ids_name_every_row(tmp_path, subjects):
    path = write(tmp_path / "scans.csv", SCANS.replace("S2-D0,S2", "S1-D0,S2"))
    msg = error_of(clinical.read_scans, path, subjects)
    assert f"{path}, row 2: scan_id 'S1-D0' (expected a value not used in another row)" in msg
    assert f"{path}, row 4: scan_id 'S1-D0' (expected a value not used in another row)" in msg


def test_unknown_subject_in_scans(tmp_path, subjects):
    path = write(tmp_path / "scans.csv", SCANS.replace("S2-D0,S2,", "S2-D0,S9,"))
    msg = error_of(clinical.read_scans, path, subjects)
    one_line(msg, f"{path}, row 4: subject_id 'S9' (expected a subject_id of the subjects sheet)")


def test_rows_are_numbered_as_in_the_spreadsheet_everywhere(tmp_path, subjects, catalog):
    """Comment and blank lines count as rows, as a spreadsheet shows them; a value spanning lines starts a row."""
    text = "# exported 2020-03-01\n" + SUBJECTS.replace("S2,", "\nS2,").replace("treated", '"treated\narm"')
    path = write(tmp_path / "s.csv", text.replace("2020-02-04,", "2020-02-31,"))
    one_line(error_of(clinical.read_subjects, path), f"{path}, row 5: day0_date '2020-02-31'")
    path = write(tmp_path / "scans.csv", "# scans\n" + SCANS.replace("S2-D0,S2,", "S2-D0,S9,"))
    one_line(error_of(clinical.read_scans, path, subjects), f"{path}, row 5: subject_id 'S9'")


# ------------------------------------------------------------------------------------------------ files
def test_separator_bom_and_utf16_are_read(tmp_path, subjects):
    expected = clinical.read_scans(write(tmp_path / "a.csv", SCANS), subjects).drop(columns="source_file")
    variants = {
        "semicolon.csv": SCANS.replace(",", ";").encode(),
        "tab.tsv": SCANS.replace(",", "\t").encode(),
        "bom.csv": b"\xef\xbb\xbf" + SCANS.encode(),
        "excel-unicode.txt": SCANS.replace(",", "\t").encode("utf-16"),
        "crlf.csv": SCANS.replace("\n", "\r\n").encode(),
        "trailing-commas.csv": SCANS.replace("\n", ",,\n").encode(),
    }
    for name, data in variants.items():
        path = write(tmp_path / "scans" / name, data)
        got = clinical.read_scans(path, subjects).drop(columns="source_file")
        pd.testing.assert_frame_equal(got.drop(columns="dicom_dir"), expected.drop(columns="dicom_dir"), obj=name)


def test_excel_sheet_rows_and_dates(tmp_path):
    path = tmp_path / "subjects.xlsx"
    table = pd.read_csv(write(tmp_path / "x.csv", SUBJECTS), dtype=str)
    table["admission_date"] = pd.to_datetime(table["admission_date"])  # real date cells
    table.loc[1, "day0_date"] = "2020-02-31"
    table.to_excel(path, index=False)
    one_line(error_of(clinical.read_subjects, path), f"{path}, row 3: day0_date '2020-02-31'")
    table.loc[1, "day0_date"] = "2020-02-04"
    table.to_excel(path, index=False)
    subjects = clinical.read_subjects(path)
    assert subjects["admission_date"].tolist() == list(pd.to_datetime(["2020-02-01", "2020-02-03"]))
    assert subjects["source_row"].tolist() == [2, 3]


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("subjects.xls", SUBJECTS.encode(), ".xls workbooks are not read; expected CSV, TSV or .xlsx"),
        ("subjects.csv", b"PK\x03\x04rest-of-a-zip", "is an Excel workbook, not CSV text"),
        ("subjects.csv", SUBJECTS.replace("control", "contr\xf4le").encode("cp1252"), "row 2: byte 0xf4 is not UTF-8"),
        ("subjects.csv", SUBJECTS.replace(",", "|").encode(), "separated by ',', ';' or tab"),
        ("subjects.csv", SUBJECTS.replace("day0_date", "day_zero").encode(), "row 1: missing column(s) day0_date"),
        ("subjects.csv", SUBJECTS.replace("2020-02-20", "2020-02-20,x").encode(), "row 2: a value 'x' in column 6"),
        ("subjects.csv", SUBJECTS.replace("arm", "subject_id", 1).encode(), "row 1: column 'subject_id' appears twice"),
        ("subjects.csv", b"subject_id,arm\nS1,\x00\n", "row 2: a NUL character"),
    ],
)
def test_unreadable_sheet(tmp_path, name, data, expected):
    path = write(tmp_path / name, data)
    msg = error_of(clinical.read_subjects, path)
    one_line(msg, str(path))
    assert expected in msg


def test_missing_file_or_a_folder(tmp_path, subjects, catalog):
    missing = tmp_path / "nope.csv"
    one_line(error_of(clinical.read_scans, missing, subjects), f"{missing}: file does not exist")
    one_line(error_of(clinical.read_labs, [tmp_path], subjects, catalog), f"{tmp_path}: is a folder")


# ------------------------------------------------------------------------------------------------ content
def test_subject_and_arm_problems(tmp_path):
    more = "S1,control,2020-02-01,2020-02-02,\nS4,,2020-02-01,2020-02-02,\n"
    path = write(tmp_path / "subjects.csv", SUBJECTS + more)
    msg = error_of(clinical.read_subjects, path)
    assert msg.startswith("subjects sheet is invalid:\n")
    assert f"{path}, row 2: subject_id 'S1' (expected a value not used in another row)" in msg
    assert f"{path}, row 4: subject_id 'S1'" in msg
    assert f"{path}, row 5: arm (empty) (expected a value)" in msg
    subjects = clinical.read_subjects(write(path, SUBJECTS))
    msg = error_of(clinical.check_arms, subjects, {"stats.treatment_arm": "UC-MSC", "stats.reference_arm": "control"})
    one_line(msg, f"config stats.treatment_arm: arm 'UC-MSC' has no subject in {path} (expected one of its arms")


@pytest.mark.parametrize(
    "spelt", ["UC\u2011MSC", "uc-msc", "UC - MSC", "UC\u2013MSC", "UC\u2212MSC", "UC-\u00adMSC", "UC-MSC\u200b"]
)
def test_arm_spelt_like_a_compared_arm(tmp_path, spelt):
    text = SUBJECTS.replace("treated", "UC-MSC") + f"S3,{spelt},2020-02-03,2020-02-04,\n"
    path = write(tmp_path / "subjects.csv", text)
    msg = error_of(clinical.check_arms, clinical.read_subjects(path), {"a": "control", "b": "UC-MSC"})
    one_line(msg, f"{path}, row 4: arm {spelt!r} (expected 'UC-MSC', the arm of the config it resembles")
    other = clinical.read_subjects(write(path, text.replace(spelt, "placebo")))
    clinical.check_arms(other, {"a": "control", "b": "UC-MSC"})  # a third arm of another name is left alone


def test_study_day_instead_of_a_date(tmp_path, subjects):
    text = "scan_id,subject_id,study_day,dicom_dir\nS1-B,S1,-2,b\nS1-D7,S1,7,c\n"
    scans = clinical.read_scans(write(tmp_path / "scans.csv", text), subjects)
    assert scans["study_day"].tolist() == [-2, 7]
    assert scans["scan_date"].tolist() == list(pd.to_datetime(["2020-01-31", "2020-02-09"]))
    for bad, expected in (("seven", "study_day 'seven' (expected a whole number of days)"),
                          ("7.5", "study_day '7.5' (expected a whole number of days)"),
                          ("", "expected a scan_date or a study_day")):
        path = write(tmp_path / "bad.csv", text.replace(",7,", f",{bad},"))
        one_line(error_of(clinical.read_scans, path, subjects), f"{path}, row 3: {expected}")
    both = "scan_id,subject_id,scan_date,study_day,dicom_dir\nS1-D7,S1,2020-02-09,6,c\n"
    path = write(tmp_path / "both.csv", both)
    one_line(error_of(clinical.read_scans, path, subjects), f"{path}, row 2: expected scan_date and study_day to agree")


def test_one_folder_per_scan_and_folder_names_never_shown(tmp_path, subjects):
    path = write(tmp_path / "scans.csv", SCANS.replace("dicom/S1-D7", "./dicom/Doe_Jane/../S1-D0"))
    msg = one_line(error_of(clinical.read_scans, path, subjects), f"{path}, row 3: dicom_dir is the folder of row 2")
    assert "Doe_Jane" not in msg and "S1-D0" not in msg
    scans = clinical.read_scans(write(path, SCANS), subjects)
    assert scans["dicom_dir"].tolist() == [str(tmp_path / "dicom" / s) for s in ("S1-D0", "S1-D7", "S2-D0")]


def test_lab_time_zone_and_adverse_event_grade(tmp_path, subjects, catalog):
    path = write(tmp_path / "labs.csv", LABS.replace("2020-02-09 08:00", "2020-02-09T08:00+01:00"))
    msg = error_of(clinical.read_labs, [path], subjects, catalog)
    one_line(msg, f"{path}, row 3: datetime '2020-02-09T08:00+01:00'")
    path = write(tmp_path / "ae.csv", "subject_id,day,term,grade,related_to_infusion\nS1,3,fever,7,true\n")
    one_line(error_of(clinical.read_adverse_events, path, subjects), f"{path}, row 2: grade '7' (expected a grade 1-5)")


def test_many_problems_are_listed_up_to_a_limit(tmp_path, subjects, catalog):
    rows = "".join(f"S1,2020-02-0{2 + i % 7} {10 + i // 7}:00,CRP,{i},furlongs\n" for i in range(MAX_LISTED + 15))
    path = write(tmp_path / "labs.csv", LABS.splitlines()[0] + "\n" + rows)
    msg = error_of(clinical.read_labs, [path], subjects, catalog)
    lines = msg.splitlines()
    assert lines[0] == f"{MAX_LISTED + 15} problem(s) in the lab files:"
    assert lines[1].strip().startswith(f"{path}, row 2: unit 'furlongs'")
    assert len(lines) == MAX_LISTED + 2 and lines[-1].strip() == "... and 15 more"


# ---------------------------------------------------------------------------------------------- Snakemake
def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def sheet_trial(workdir: Path, **config_changes) -> Path:
    """A two-subject trial given by sheets, with the repository's default configuration and shipped tables; the
    subjects sheet has the outcome columns the default analysis plan reads."""
    from lungtrial.stats import load_plan

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    columns = load_plan(config.get("analysis"), config["clinical"]["visits"]).subject_columns()
    subjects = pd.read_csv(io.StringIO(SUBJECTS.replace("treated", "UC-MSC")), dtype=str)
    for column, kind in columns.items():
        if column not in subjects:
            subjects[column] = {"bool": "false", "number": "3"}.get(kind, "none")
    subjects.to_csv(workdir / "subjects.csv", index=False)
    write(workdir / "scans.csv", SCANS)
    write(workdir / "labs.csv", LABS)
    config["demo"] = False
    config["sheets"] = {"subjects": "subjects.csv", "scans": "scans.csv", "labs": ["labs.csv"], "adverse_events": ""}
    for key, value in config_changes.items():
        section, name = key.split("__")
        config[section][name] = value
    write(workdir / "config.yaml", yaml.safe_dump(config))
    return workdir


def assert_no_frames(output: str) -> None:
    assert "Traceback" not in output, output
    assert not re.search(r'File ".*", line \d+', output), output
    assert "WorkflowError" not in output and "Exception" not in output, output


@pytest.mark.workflow
def test_bad_lab_value_stops_before_any_job_and_keeps_earlier_results(tmp_path):
    trial = sheet_trial(tmp_path)
    names = ("results/tables/labs.csv", "results/tables/labs.parquet")
    earlier = {name: write(tmp_path / name, f"{name} of an earlier run\n") for name in names}
    write(trial / "labs.csv", LABS.replace(",4,", ",pos,"))
    proc = snakemake(trial, "--cores", "1", "--keep-going")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "labs.csv, row 3: value 'pos' (expected a number or a censored number such as <0.5 or >1000)" in out
    assert_no_frames(out)
    assert len([ln for ln in out.splitlines() if ln.strip()]) <= 3, out  # (a profile line,) the problem, what to do
    for name, path in earlier.items():
        assert path.read_text() == f"{name} of an earlier run\n"
    assert not (tmp_path / "logs").exists()


@pytest.mark.workflow
def test_config_error_is_one_line(tmp_path):
    trial = sheet_trial(tmp_path, stats__alpha=2)
    proc = snakemake(trial, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "Error validating config file: stats.alpha: 2 is greater than or equal to the maximum of 1" in out
    assert_no_frames(out)


@pytest.mark.workflow
def test_lesion_mask_of_an_unknown_scan_is_one_line(tmp_path):
    trial = sheet_trial(tmp_path, imaging__lesion_masks={"S1-D07": "masks/S1.nii.gz", 5: "masks/S5.nii.gz"})  # the scan is S1-D7
    proc = snakemake(trial, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "config imaging.lesion_masks: scan_id 'S1-D07' (expected a scan_id of the scans sheet)" in out
    assert "config imaging.lesion_masks: scan_id '5' (expected a scan_id of the scans sheet)" in out  # a number too
    assert "masks/S1.nii.gz" not in out
    assert_no_frames(out)


@pytest.mark.workflow
def test_misspelt_config_key_is_one_line(tmp_path):
    trial = sheet_trial(tmp_path, imaging__stirct=True)  # 'strict' misspelt: ignored, the run would not be strict
    proc = snakemake(trial, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "Error validating config file: imaging: Additional properties are not allowed ('stirct' was unexpected)" in out
    assert_no_frames(out)


@pytest.mark.workflow
def test_strict_exclusion_under_keep_going_is_one_line_in_the_job(tmp_path):
    trial = sheet_trial(tmp_path, imaging__strict=True)
    write(trial / "dicom/S1-D7/notes.txt", "not a DICOM file\n")
    proc = snakemake(trial, "--cores", "1", "--keep-going", "results/scans/S1-D7/metrics.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    log = (trial / "logs/quantify_scan/S1-D7.log").read_text()
    assert "Traceback" not in log and "Traceback" not in out, out
    assert "FutureWarning" not in out
    errors = [ln for ln in log.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "scan S1-D7" in errors[0], log
    # on the console: that line once, with the rule and the log, and none of Snakemake's failure frames
    message = errors[0].split(" ERROR lungtrial: ", 1)[1]
    (line,) = [ln for ln in out.splitlines() if "scan S1-D7" in ln and "excluded" in ln]
    assert line == f"quantify_scan failed: {message} (log: logs/quantify_scan/S1-D7.log)", out
    assert_no_frames(out)
    assert "Error in rule" not in out and "CalledProcessError" not in out, out
