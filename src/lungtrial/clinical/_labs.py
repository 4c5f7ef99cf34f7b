"""Lab files, long or wide form, into the tidy ``labs`` table: values (numbers and censored values), analytes
and units harmonised through the catalogue, study days and visits, one line per problem."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from lungtrial.clinical._catalog import LabCatalog
from lungtrial.clinical._columns import DROPPED_COLUMNS, LAB_COLUMNS
from lungtrial.clinical._dates import _iso_dates
from lungtrial.clinical._sheets import (
    _failures,
    _lower_columns,
    _read_text_table,
    _row,
    _sorted,
)
from lungtrial.clinical._visits import assign_visits, visit_windows
from lungtrial.errors import InputError, problem_list

log = logging.getLogger("lungtrial.clinical")


_VALUE_RE = re.compile(r"^\s*(<=|>=|≤|≥|<|>)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")

_WIDE_HEADER_RE = re.compile(r"^(?P<name>.*?)\s*\[(?P<unit>[^\]]*)\]\s*$")

_TIME_COLUMNS = ("datetime", "date", "study_day")


def parse_value(text: str) -> tuple[float, str]:
    """Parse a lab value given as text.

    Parameters
    ----------
    text : str
        ``"12.5"``, ``"<0.5"``, ``">1000"``, ``"<= 3"`` ...

    Returns
    -------
    value : float
        The number, or the limit of a censored value (in the unit the text was given in).
    censored : str
        ``""``, ``"<"`` (below the limit) or ``">"`` (above the limit).

    Raises
    ------
    ValueError
        The text is not a number or a censored number.
    """
    match = _VALUE_RE.match(str(text))
    if not match:
        raise ValueError(f"not a number or a censored number: {text!r}")
    op = match.group(1) or ""
    censored = "<" if op in ("<", "<=", "≤") else ">" if op in (">", ">=", "≥") else ""
    return float(match.group(2)), censored


# lab checks (pandera check names) -> (column shown, its name in the message, what was expected)
_LAB_PROBLEMS = {
    "known_subject": ("subject_id", "subject_id", "a subject_id of the subjects sheet"),
    "time_text": ("time", "time", "an ISO date or date-time (YYYY-MM-DD or YYYY-MM-DD HH:MM), or a study day number"),
    "value_text": ("value_text", "value", "a number or a censored number such as <0.5 or >1000"),
    "not_negative": (
        "value_text",
        "value",
        "a number >= 0 for this analyte; one that can be negative has signed = yes in the analytes table",
    ),
    "known_analyte": ("analyte_text", "analyte", "a name or synonym of the analytes table"),
    "known_unit": ("unit_text", "unit", "a unit of the units table for this analyte"),
    "in_stay": ("datetime", "datetime", "a date from admission to the later of discharge and the last visit"),
    "not_nullable": ("subject_id", "subject_id", "a value"),
}


def _lab_messages(frame: pd.DataFrame, cases: pd.DataFrame) -> list[str]:
    """Problem lines (file, row, offending value, what was expected) of failing rows of a lab frame."""
    messages = []
    for case in cases.itertuples():
        row = frame.loc[case.index]
        where = f"{row['source_file']}, row {row['source_row']}"
        if case.check == "unique_key":
            messages.append(
                f"{where}: a second {row['analyte_label']} value for subject {row['subject_id']} at "
                f"{row['datetime']:%Y-%m-%d %H:%M} (expected one value per subject, analyte and date-time)"
            )
            continue
        column, name, expected = _LAB_PROBLEMS.get(case.check, (case.column, case.column, case.check))
        value = row.get(column)
        if case.check == "time_text":
            name = row["time_kind"]
        if case.check == "known_unit":
            expected = f"a unit of the units table for {row['analyte']}"
        if isinstance(value, pd.Timestamp):
            value = f"{value:%Y-%m-%d %H:%M}"
        shown = "(empty)" if pd.isna(value) else repr(str(value))
        messages.append(f"{where}: {name} {shown} (expected {expected})")
    return messages


def wide_to_long(table: pd.DataFrame, source: str = "") -> pd.DataFrame:
    """Convert a wide lab table (one column per analyte, unit in brackets in the header) to long form.

    Parameters
    ----------
    table : DataFrame
        Text cells; ``subject_id``, one time column (``datetime``, ``date`` or ``study_day``) and analyte
        columns named ``<analyte> [<unit>]`` (e.g. ``CRP [mg/L]``, ``Lymphocytes [10^9/L]``).
    source : str
        File name used in error messages.

    Returns
    -------
    DataFrame
        ``subject_id``, the time column, ``analyte``, ``value``, ``unit`` and ``source_row`` (the spreadsheet
        row of the wide table); one row per analyte cell, empty cells included.
    """
    table = _lower_columns(table, ("subject_id", *_TIME_COLUMNS))
    keys = [c for c in ("subject_id", *_TIME_COLUMNS) if c in table.columns]
    bad = [c for c in table.columns if c not in keys and c != "source_row" and not _WIDE_HEADER_RE.match(c)]
    if bad:
        raise InputError(
            f"{source}: wide lab table column(s) {', '.join(map(repr, bad))} are not '<analyte> [<unit>]' "
            "(or use the long layout: subject_id, datetime, analyte, value, unit)"
        )
    if "source_row" not in table.columns:
        table = table.assign(source_row=[_row(i) for i in table.index])
    long = table.melt(id_vars=[*keys, "source_row"], var_name="header", value_name="value")
    parts = long["header"].str.extract(_WIDE_HEADER_RE)
    long = long.assign(analyte=parts["name"].str.strip(), unit=parts["unit"].str.strip()).drop(columns="header")
    return long.sort_values(["source_row", "analyte"], kind="stable").reset_index(drop=True)


def _read_lab_file(path: Path) -> pd.DataFrame:
    """One lab file in long form with ``time``/``time_kind``, ``source_file`` and ``source_row`` columns."""
    table = _read_text_table(path)
    table = _lower_columns(table, ("subject_id", "analyte", "value", "unit", *_TIME_COLUMNS))
    if "analyte" not in table.columns:
        table = wide_to_long(table, str(path))
    times = [c for c in _TIME_COLUMNS if c in table.columns]
    missing = [c for c in ("subject_id", "analyte", "value", "unit") if c not in table.columns]
    if missing or len(times) != 1:
        raise InputError(
            f"{path}: expected columns subject_id, one of datetime/date/study_day, analyte, value, unit "
            f"(long layout) or subject_id, a time column and '<analyte> [<unit>]' columns (wide layout); "
            f"found {', '.join(map(str, table.columns))}"
        )
    return pd.DataFrame(
        {
            "subject_id": table["subject_id"],
            "time": table[times[0]],
            "time_kind": times[0],
            "analyte_text": table["analyte"],
            "value_text": table["value"],
            "unit_text": table["unit"],
            "source_file": str(path),
            "source_row": table["source_row"].astype(int),
        }
    )


def _follow_up_end(windows: Sequence[tuple[str, float, float]]) -> float:
    return max((hi for _, _, hi in windows), default=0.0)


def read_labs(
    paths: Sequence[str | Path],
    subjects: pd.DataFrame,
    catalog: LabCatalog,
    *,
    visits: Mapping[str, Sequence[float]] | None = None,
    on_unknown: str = "error",
    tolerance_days: float = 1.0,
    first_dose_day: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read, harmonise and validate lab files into the tidy ``labs`` table.

    Parameters
    ----------
    paths : sequence of paths
        Lab files (long or wide layout, CSV/TSV/xlsx; see :mod:`lungtrial.clinical`).
    subjects : DataFrame
        From :func:`read_subjects`.
    catalog : LabCatalog
        From :func:`load_catalog`.
    visits : mapping, optional
        Visit name -> inclusive study-day window ``[lo, hi]`` (config ``clinical.visits``); used to label
        visits and to extend the accepted period to the end of the last visit window.
    on_unknown : {"error", "warn"}
        What an unknown analyte or unit does: an error, or a warning that drops the row and lists it.
    tolerance_days : float
        Days a sample may lie before admission, or after the later of discharge and day 0 + the end of the
        last visit window (follow-up visits happen after discharge).
    first_dose_day : float
        The first dose as a study day (0.375 = 09:00 on day 0): the baseline visit takes the last value before it
        (:func:`assign_visits`).

    Returns
    -------
    labs : DataFrame
        Columns :data:`LAB_COLUMNS`; ``value`` is in the canonical unit (for a censored value, the converted
        limit); ``censored`` is ``""``, ``"<"`` or ``">"``; ``visit`` as in :func:`assign_visits`.
    dropped : DataFrame
        Columns :data:`DROPPED_COLUMNS`: rows left out (empty values; with ``on_unknown="warn"`` unknown
        analytes and units) and why.

    Raises
    ------
    InputError
        Lists every problem of every file (unknown subject, unparseable date-time or value, unknown analyte or
        unit unless ``on_unknown="warn"``, date outside the subject's stay, duplicate subject/analyte/
        date-time) with its file and row.
    """
    if on_unknown not in ("error", "warn"):
        raise ValueError(f"on_unknown must be 'error' or 'warn', not {on_unknown!r}")
    windows = visit_windows(visits or {})
    frames = [_read_lab_file(Path(p)) for p in paths]
    raw = pd.concat(frames, ignore_index=True) if frames else _read_lab_file_empty()
    empty = raw["value_text"].isna()
    dropped = [_dropped(raw[empty], "empty value")]
    raw = raw[~empty]

    names = raw["analyte_text"].dropna().unique()
    raw = raw.assign(analyte=raw["analyte_text"].map({n: catalog.analyte(n) for n in names}))
    pairs = raw[["analyte", "unit_text"]].dropna().drop_duplicates()
    factor_of = {(a, u): catalog.factor(a, u) for a, u in pairs.itertuples(index=False)}
    raw = raw.assign(factor=pd.Series(list(zip(raw["analyte"], raw["unit_text"])), index=raw.index).map(factor_of))
    known_subjects = set(subjects["subject_id"])

    def time_ok(df: pd.DataFrame) -> pd.Series:
        iso = _iso_dates(df["time"]).notna()
        num = pd.to_numeric(df["time"], errors="coerce").notna()
        return iso.where(df["time_kind"] != "study_day", num)

    schema = pa.DataFrameSchema(
        {
            "subject_id": pa.Column(object, pa.Check.isin(known_subjects, error="known_subject")),
            "value_text": pa.Column(object, pa.Check.str_matches(_VALUE_RE.pattern, error="value_text")),
        },
        checks=[
            # a negative count or concentration is a typo (a sign, or a dash for "not measured"); analytes that
            # can be negative (e.g. base excess) say so in the analytes table
            pa.Check(
                lambda df: ~(
                    (pd.to_numeric(df["value_text"].str.extract(_VALUE_RE)[1], errors="coerce") < 0)
                    & df["factor"].notna()  # a known analyte and unit (others get their own message)
                    & ~df["analyte"].isin(catalog.signed)
                ),
                error="not_negative",
                ignore_na=False,
            ),
            pa.Check(time_ok, error="time_text", ignore_na=False),
            pa.Check(lambda df: df["analyte"].notna(), error="known_analyte", ignore_na=False),
            pa.Check(lambda df: df["analyte"].isna() | df["factor"].notna(), error="known_unit", ignore_na=False),
        ],
    )
    stage1 = _failures(schema, raw)
    unknown = stage1["check"].isin(["known_analyte", "known_unit"])
    problems = _lab_messages(raw, stage1 if on_unknown == "error" else stage1[~unknown])
    if on_unknown == "warn":
        for check, reason in (("known_analyte", "unknown analyte"), ("known_unit", "unknown unit")):
            cases = stage1[stage1["check"] == check]
            for msg in _lab_messages(raw, cases):
                log.warning("lab row dropped: %s", msg)
            dropped.append(_dropped(raw.loc[cases["index"]], reason))
    good = raw.drop(index=stage1["index"].unique())

    labs = _harmonised(good, subjects, catalog)
    lo = labs["admission_date"] - pd.Timedelta(days=tolerance_days)
    end = labs["day0_date"] + pd.Timedelta(days=_follow_up_end(windows))
    hi = pd.concat([labs["discharge_date"], end], axis=1).max(axis=1) + pd.Timedelta(days=tolerance_days + 1)
    labs = labs.assign(_lo=lo, _hi=hi)
    stage2 = pa.DataFrameSchema(
        checks=[
            pa.Check(
                lambda df: (df["datetime"] >= df["_lo"]) & (df["datetime"] < df["_hi"]),
                error="in_stay",
                ignore_na=False,
            )
        ],
        unique=["subject_id", "analyte", "datetime"],
        report_duplicates="all",
    )
    problems += _lab_messages(labs, _failures(stage2, labs))
    if problems:
        raise InputError(problem_list(f"{len(problems)} problem(s) in the lab files", _sorted(problems)))
    labs["study_day"] = ((labs["datetime"] - labs["day0_date"]) / pd.Timedelta(days=1)).round(4)
    labs["visit"] = assign_visits(labs, windows, by=["subject_id", "analyte"], first_dose_day=first_dose_day)
    labs = labs.sort_values(["subject_id", "analyte", "datetime"], kind="stable")[list(LAB_COLUMNS)]
    dropped_table = pd.concat(dropped, ignore_index=True)[list(DROPPED_COLUMNS)]
    dropped_table = dropped_table.sort_values(["source_file", "source_row"], kind="stable")
    if len(dropped_table):
        log.info("%d lab row(s) dropped (see the dropped-labs table)", len(dropped_table))
    return labs.reset_index(drop=True), dropped_table.reset_index(drop=True)


def _read_lab_file_empty() -> pd.DataFrame:
    cols = ["subject_id", "time", "time_kind", "analyte_text", "value_text", "unit_text", "source_file"]
    return pd.DataFrame({**{c: pd.Series(dtype=object) for c in cols}, "source_row": pd.Series(dtype=int)})


def _dropped(rows: pd.DataFrame, reason: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_file": rows["source_file"],
            "source_row": rows["source_row"],
            "subject_id": rows["subject_id"],
            "analyte": rows["analyte_text"],
            "value": rows["value_text"],
            "unit": rows["unit_text"],
            "reason": reason,
        },
        columns=list(DROPPED_COLUMNS),
    )


def _harmonised(raw: pd.DataFrame, subjects: pd.DataFrame, catalog: LabCatalog) -> pd.DataFrame:
    """Valid raw rows -> canonical analyte, value (limit) and unit, censoring, date-time, subject dates."""
    parts = raw["value_text"].str.extract(_VALUE_RE)
    censored = parts[0].fillna("").replace({"<=": "<", "≤": "<", ">=": ">", "≥": ">"})
    info = subjects.set_index("subject_id")
    day0 = raw["subject_id"].map(info["day0_date"])
    when = _iso_dates(raw["time"])
    by_day = raw["time_kind"] == "study_day"
    if by_day.any():
        days = pd.to_numeric(raw["time"].where(by_day), errors="coerce")
        when = when.where(~by_day, day0 + pd.to_timedelta(days, unit="D"))
    return pd.DataFrame(
        {
            "subject_id": raw["subject_id"],
            "arm": raw["subject_id"].map(info["arm"]),
            "datetime": when,
            "analyte": raw["analyte"],
            "analyte_label": raw["analyte"].map(catalog.labels),
            "value": parts[1].astype(float) * raw["factor"],
            "censored": censored,
            "unit": raw["analyte"].map(catalog.units),
            "source_file": raw["source_file"],
            "source_row": raw["source_row"],
            "admission_date": raw["subject_id"].map(info["admission_date"]),
            "day0_date": day0,
            "discharge_date": raw["subject_id"].map(info["discharge_date"]),
        },
        index=raw.index,
    )
