"""The subjects sheet: reading and checking it, the outcomes derived from it, the arms the trial compares."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from lungtrial.clinical._columns import SHEET_SUBJECT_COLUMNS
from lungtrial.clinical._dates import _iso_dates
from lungtrial.clinical._sheets import (
    _failures,
    _missing_columns,
    _parse_bool,
    _read_text_table,
    _required_missing,
    _schema_messages,
    _sheet_messages,
    _sorted,
    sheet_schema,
)
from lungtrial.errors import InputError, problem_list

# The analysis plan's column kinds (lungtrial.stats.Plan.subject_columns) as properties of the sheet's schema.
_PLAN_KINDS = {
    "bool": {"type": "boolean", "expected": "true or false"},
    "number": {"type": "number", "minimum": 0, "expected": "a number >= 0"},
    "text": {"type": "string"},
}


def read_subjects(path: str | Path, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read and validate the subjects sheet (one row per subject).

    Parameters
    ----------
    path : path
        CSV/TSV/xlsx with at least ``subject_id, arm, admission_date, day0_date``; optional ``discharge_date``
        (empty: not discharged, censored), ``age`` (years), ``sex``, ``severity``, ``mechanical_ventilation,
        oxygen_support, fever, cough, dyspnoea, infusion_adverse_event`` (kept as text unless ``columns`` names
        their kind) and ``days_to_symptom_resolution`` (days from day 0; empty: not resolved, censored).
        Other columns are ignored (and never copied to outputs) unless named in ``columns``. Every row is
        checked against the sheet's JSON schema (:func:`sheet_schema` ``("subjects")``, which names these columns
        with their types and formats); a subject_id used twice and the order of the dates are checked across rows.
    columns : mapping, optional
        Further sheet columns the analysis plan reads (:meth:`lungtrial.stats.Plan.subject_columns`), with their
        kind: ``bool`` (true/false, parsed to nullable booleans), ``number`` (>= 0, float) or ``text``; they are
        added to the schema's columns. A column named here must be in the sheet.

    Returns
    -------
    DataFrame
        The sheet's columns parsed (dates as Timestamps, booleans as nullable booleans, numbers as float) plus
        ``source_file`` and ``source_row``, indexed 0..n-1.

    Raises
    ------
    InputError
        Lists every problem (missing or duplicate subject_id, unparseable dates, numbers or booleans, day 0
        before admission, discharge before day 0) with file and row.
    """
    path = Path(path)
    raw = _read_text_table(path)
    schema = sheet_schema("subjects")
    missing = _required_missing(schema, raw)
    if missing:
        raise InputError(_missing_columns(path, missing, raw))
    if raw.empty:
        raise InputError(f"{path}: no rows below the header; expected one row per subject")
    columns = dict(columns or {})
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} named by the analysis plan (config analysis)")
    props = schema["properties"]
    for col, kind in columns.items():  # a text column keeps the schema's type when the schema has the column
        if kind in _PLAN_KINDS and (kind != "text" or col not in props):
            props[col] = _PLAN_KINDS[kind]
    for col in SHEET_SUBJECT_COLUMNS:
        if col not in raw.columns:
            raw[col] = np.nan
    raw = raw.assign(source_file=str(path))

    def stay_order(df: pd.DataFrame) -> pd.Series:
        adm, day0, dis = (_iso_dates(df[c]) for c in ("admission_date", "day0_date", "discharge_date"))
        return ~((day0 < adm) | (dis < day0))

    # what one row cannot show; the columns' types and formats are the schema's
    across_rows = pa.DataFrameSchema(
        {"subject_id": pa.Column(object, unique=True, report_duplicates="all", nullable=True)},
        checks=[pa.Check(stay_order, error="admission_date <= day0_date <= discharge_date", ignore_na=False)],
    )
    problems = _schema_messages(raw, schema, path) + _sheet_messages(raw, _failures(across_rows, raw), path)
    if problems:
        raise InputError(problem_list("subjects sheet is invalid", _sorted(problems)))
    extra = [c for c in columns if c not in SHEET_SUBJECT_COLUMNS]
    out = raw[[*SHEET_SUBJECT_COLUMNS, *extra, "source_file", "source_row"]].copy()
    kinds = {c: prop.get("type") for c, prop in schema["properties"].items()}
    for col in ("admission_date", "day0_date", "discharge_date"):
        out[col] = _iso_dates(out[col]).dt.normalize()
    for col in (c for c in out.columns if kinds.get(c) == "number"):
        out[col] = pd.to_numeric(out[col]).astype(float)
    for col in (c for c in out.columns if kinds.get(c) == "boolean"):
        out[col] = out[col].map(_parse_bool).astype("boolean")
    return out


def subject_table(subjects: pd.DataFrame, labs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Subjects with their derived outcomes (the ``subjects`` table without ``n_scans``).

    Parameters
    ----------
    subjects : DataFrame
        From :func:`read_subjects`.
    labs : DataFrame, optional
        The labs table (:func:`read_labs`); its last sample date counts as contact for censoring.

    Returns
    -------
    DataFrame
        ``length_of_stay_days`` (discharge - admission, days), ``days_to_discharge`` (discharge - day 0, or
        days to the last contact when not discharged), ``discharged`` (false = censored), ``symptom_resolved``
        (false = censored); for a censored subject ``days_to_symptom_resolution`` is the days to the last
        contact. Last contact = the later of discharge and the last lab sample (whole study days); NaN when
        neither is known.
    """
    out = subjects.drop(columns=["source_file", "source_row"], errors="ignore").copy()
    discharged = out["discharge_date"].notna()
    to_discharge = (out["discharge_date"] - out["day0_date"]).dt.days.astype(float)
    last = to_discharge.copy()
    if labs is not None and len(labs):
        last_lab = np.floor(labs.groupby("subject_id")["study_day"].max())
        last = pd.concat([last, out["subject_id"].map(last_lab)], axis=1).max(axis=1)
    out["length_of_stay_days"] = (out["discharge_date"] - out["admission_date"]).dt.days.astype(float)
    out["days_to_discharge"] = to_discharge.where(discharged, last)
    out["discharged"] = discharged
    resolved = out["days_to_symptom_resolution"].notna()
    out["days_to_symptom_resolution"] = out["days_to_symptom_resolution"].where(resolved, last)
    out["symptom_resolved"] = resolved
    return out.reset_index(drop=True)


def check_arms(subjects: pd.DataFrame, arms: Mapping[str, str]) -> None:
    """Check that the arms the configuration compares are arms of the subjects sheet.

    Parameters
    ----------
    subjects : DataFrame
        From :func:`read_subjects` (``arm``, ``source_file``).
    arms : mapping
        Config key -> arm, e.g. ``{"stats.reference_arm": "control", "stats.treatment_arm": "UC-MSC"}``.

    Raises
    ------
    InputError
        An arm has no subject; names the key, the arm and the arms the sheet has.
    """
    present = sorted(subjects["arm"].dropna().astype(str).unique())
    source = subjects["source_file"].iloc[0] if "source_file" in subjects and len(subjects) else "the subjects sheet"
    problems = [
        f"config {key}: arm {arm!r} has no subject in {source} (expected one of its arms: {', '.join(present)})"
        for key, arm in arms.items()
        if str(arm) not in present
    ]
    if problems:
        raise InputError(problem_list("the compared arms are not in the subjects sheet", problems))
    # an arm spelt like a compared one but not the same (case, spaces, a non-breaking or Unicode hyphen pasted from a
    # word processor) would silently become an arm of its own, its subjects left out of the comparison
    compared = {_arm_key(arm): str(arm) for arm in arms.values()}
    lookalikes = [
        f"{row.get('source_file', source)}, row {row.get('source_row', '?')}: arm {row['arm']!r} "
        f"(expected {compared[_arm_key(row['arm'])]!r}, the arm of the config it resembles, spelt the same)"
        for _, row in subjects.iterrows()
        if isinstance(row["arm"], str) and row["arm"] not in compared.values() and _arm_key(row["arm"]) in compared
    ]
    if lookalikes:
        raise InputError(problem_list("subjects sheet is invalid", lookalikes))


def _arm_key(arm) -> str:
    """An arm's name with case, spaces, and Unicode look-alikes (dashes, compatibility forms) folded."""
    import unicodedata

    text = unicodedata.normalize("NFKC", str(arm)).casefold()
    # dashes and the minus sign read as a hyphen; invisible format characters (soft hyphen, zero-width space) go
    text = "".join(
        "-" if unicodedata.category(c) == "Pd" or c == "\u2212" else c
        for c in text
        if unicodedata.category(c) != "Cf"
    )
    return "".join(text.split())
