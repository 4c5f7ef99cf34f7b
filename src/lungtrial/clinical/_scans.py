"""The scans sheet: one row per CT scan, its subject, date or study day and DICOM folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from lungtrial.clinical._dates import _iso_dates
from lungtrial.clinical._sheets import (
    _failures,
    _lower_columns,
    _missing_columns,
    _read_text_table,
    _required_missing,
    _schema_messages,
    _sheet_messages,
    _sorted,
    sheet_schema,
)
from lungtrial.errors import InputError, problem_list

SCAN_SHEET_COLUMNS = tuple(sheet_schema("scans")["properties"])
"""The scans sheet's columns that are read (the properties of its schema, in order)."""


def read_scans(path: str | Path, subjects: pd.DataFrame) -> pd.DataFrame:
    """Read and validate the scans sheet (one row per CT scan).

    Parameters
    ----------
    path : path
        CSV/TSV/xlsx with ``scan_id`` (unique; letters, digits, ``.``, ``_``, ``-``: it names the scan's results
        folder), ``subject_id`` (of the subjects sheet), ``scan_date`` (ISO date) or ``study_day`` (whole days
        from day 0; used where ``scan_date`` is empty) and ``dicom_dir`` (the study folder, relative to the
        sheet's folder unless absolute; one folder per scan). Other columns are ignored. Every row is checked
        against the sheet's JSON schema (:func:`sheet_schema` ``("scans")``); repeated scan IDs and folders, the
        subject and the agreement of date and study day are checked across rows and sheets.
    subjects : DataFrame
        From :func:`read_subjects`.

    Returns
    -------
    DataFrame
        ``scan_id, subject_id, scan_date`` (Timestamp, midnight), ``study_day`` (int, days from day 0),
        ``dicom_dir`` (resolved against the sheet's folder), ``source_file``, ``source_row``; in sheet order.

    Raises
    ------
    InputError
        Lists every problem with file, row, column, value and what was expected. A ``dicom_dir`` is never
        quoted: folder names may identify the patient.
    """
    path = Path(path)
    raw = _lower_columns(_read_text_table(path), SCAN_SHEET_COLUMNS)
    schema = sheet_schema("scans")
    missing = _required_missing(schema, raw)
    if missing:
        raise InputError(_missing_columns(path, missing, raw))
    if raw.empty:
        raise InputError(f"{path}: no rows below the header; expected one row per CT scan")
    for col in ("scan_date", "study_day"):
        if col not in raw.columns:
            raw[col] = np.nan
    raw = raw.assign(source_file=str(path))
    day0 = raw["subject_id"].map(subjects.drop_duplicates("subject_id").set_index("subject_id")["day0_date"])
    dates = _iso_dates(raw["scan_date"]).dt.normalize()
    days = pd.to_numeric(raw["study_day"], errors="coerce")
    folders = raw["dicom_dir"].map(lambda d: os.path.normpath(os.path.join(path.parent, d)), na_action="ignore")

    # what one row cannot show; the columns' types and formats are the schema's
    across_rows = pa.DataFrameSchema(
        {
            "scan_id": pa.Column(object, unique=True, report_duplicates="all", nullable=True),
            "subject_id": pa.Column(
                object,
                pa.Check.isin(set(subjects["subject_id"]), error="a subject_id of the subjects sheet"),
                nullable=True,
            ),
        },
        checks=[
            pa.Check(
                lambda df: dates.isna() | days.isna() | day0.isna() | ((dates - day0).dt.days == days),
                error="scan_date and study_day to agree (study_day = scan_date - day0_date of the subject)",
                ignore_na=False,
            ),
        ],
    )
    # a dicom_dir is never quoted: the schema only requires one
    problems = _schema_messages(raw, schema, path) + _sheet_messages(raw, _failures(across_rows, raw), path)
    repeated = folders.duplicated(keep=False) & folders.notna()
    for _, rows in raw.loc[repeated, "source_row"].groupby(folders[repeated], sort=False):
        first, *others = rows
        problems += [
            f"{path}, row {r}: dicom_dir is the folder of row {first} too (expected one folder per scan)"
            for r in others
        ]
    if problems:
        raise InputError(problem_list("scans sheet is invalid", _sorted(problems)))
    study_day = days.where(dates.isna(), (dates - day0).dt.days)
    return pd.DataFrame(
        {
            "scan_id": raw["scan_id"],
            "subject_id": raw["subject_id"],
            "scan_date": dates.where(dates.notna(), day0 + pd.to_timedelta(days, unit="D")),
            "study_day": study_day.astype(int),
            "dicom_dir": folders,
            "source_file": raw["source_file"],
            "source_row": raw["source_row"],
        }
    ).reset_index(drop=True)
