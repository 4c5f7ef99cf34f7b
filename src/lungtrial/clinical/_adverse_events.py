"""The adverse-events sheet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from lungtrial.clinical._columns import AE_COLUMNS
from lungtrial.clinical._dates import _iso_dates
from lungtrial.clinical._sheets import (
    _failures,
    _is_bool_text,
    _lower_columns,
    _parse_bool,
    _read_text_table,
    _sheet_messages,
    _sorted,
)
from lungtrial.errors import InputError, problem_list


def read_adverse_events(path: str | Path | None, subjects: pd.DataFrame) -> pd.DataFrame:
    """Read and validate the adverse-events sheet.

    Parameters
    ----------
    path : path or None
        Columns ``subject_id, day`` (study day; or ``date``, ISO), ``term``, ``grade`` (CTCAE 1-5),
        ``related_to_infusion`` (true/false). None or ``""``: no adverse-event sheet (empty table).
    subjects : DataFrame
        From :func:`read_subjects`.

    Returns
    -------
    DataFrame
        Columns :data:`AE_COLUMNS` (``day`` float study day, ``grade`` int, ``related_to_infusion`` boolean).

    Raises
    ------
    InputError
        Lists every problem with file and row.
    """
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in AE_COLUMNS})
    if not path:
        return empty
    path = Path(path)
    raw = _read_text_table(path)
    raw = _lower_columns(raw, ("subject_id", "day", "date", "term", "grade", "related_to_infusion"))
    when = "day" if "day" in raw.columns else "date"
    missing = [c for c in ("subject_id", when, "term", "grade", "related_to_infusion") if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    when_check = (
        pa.Check(lambda s: pd.to_numeric(s, errors="coerce").notna(), error="a study day number")
        if when == "day"
        else pa.Check(lambda s: _iso_dates(s).notna(), error="an ISO date YYYY-MM-DD")
    )
    schema = pa.DataFrameSchema(
        {
            "subject_id": pa.Column(
                object, pa.Check.isin(set(subjects["subject_id"]), error="a subject_id of the subjects sheet")
            ),
            when: pa.Column(object, when_check),
            "term": pa.Column(object),
            "grade": pa.Column(object, pa.Check.isin([str(g) for g in range(1, 6)], error="a grade 1-5")),
            "related_to_infusion": pa.Column(object, pa.Check(_is_bool_text, error="true or false")),
        }
    )
    problems = _sheet_messages(raw, _failures(schema, raw), path)
    if problems:
        raise InputError(problem_list("adverse events sheet is invalid", _sorted(problems)))
    info = subjects.set_index("subject_id")
    if when == "day":
        day = pd.to_numeric(raw["day"]).astype(float)
    else:
        day0 = raw["subject_id"].map(info["day0_date"])
        day = (_iso_dates(raw["date"]).dt.normalize() - day0).dt.days.astype(float)
    return pd.DataFrame(
        {
            "subject_id": raw["subject_id"],
            "arm": raw["subject_id"].map(info["arm"]),
            "day": day,
            "term": raw["term"],
            "grade": raw["grade"].astype(int),
            "related_to_infusion": raw["related_to_infusion"].map(_parse_bool).astype("boolean"),
        }
    ).reset_index(drop=True)
