"""Clinical data of a trial: subjects and outcomes, labs (units, censoring, validation), study days, visits, joins.

Conventions
-----------
- Rows of an input sheet are numbered as a spreadsheet shows them: the header is row 1, the first data row is
  row 2. Every error names the file and that row; all problems of all files are collected first and raised as
  one :class:`~lungtrial.errors.InputError`.
- Day 0 of a subject is ``day0_date`` (first infusion / enrolment). ``study_day`` of a lab is the float number
  of days from day 0 at midnight (a sample taken at 06:00 on day 2 has study day 2.25); the study day of a scan
  is a whole number of days.
- Lab files come in long form (``subject_id``, ``datetime`` | ``date`` | ``study_day``, ``analyte``, ``value``,
  ``unit``) or in wide form (the same time column, then one column per analyte with its unit in square brackets
  in the header, e.g. ``CRP [mg/L]``), as CSV, TSV or Excel (.xlsx, first sheet).
- Values are text: numbers (``12.5``, ``1e3``), censored values (``<0.5``, ``>1000``, ``<=`` / ``>=`` are read
  as ``<`` / ``>``) or empty (not measured; the row is dropped and listed). A censored value keeps its limit in
  ``value`` and its direction in ``censored``; it is never turned into a plain number.
- Analytes and units are harmonised through two tables (``resources/analytes.csv``: canonical slug, display
  label, synonyms; ``resources/units.csv``: accepted unit spellings per analyte with the factor to the
  canonical unit). Names and units are matched case-insensitively, ignoring spaces; ``µ``/``μ`` count as ``u``
  and ``10*9`` or ``x10^9`` as ``10^9``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from lungtrial.errors import InputError, problem_list
from lungtrial.wfutil import atomic_path

log = logging.getLogger(__name__)

SHEET_SUBJECT_COLUMNS = (
    "subject_id",
    "arm",
    "admission_date",
    "day0_date",
    "discharge_date",
    "age",
    "sex",
    "severity",
    "mechanical_ventilation",
    "oxygen_support",
    "fever",
    "cough",
    "dyspnoea",
    "days_to_symptom_resolution",
    "infusion_adverse_event",
)
SUBJECT_COLUMNS = (
    *SHEET_SUBJECT_COLUMNS,
    "length_of_stay_days",
    "days_to_discharge",
    "discharged",
    "symptom_resolved",
    "n_scans",
)
LAB_COLUMNS = (
    "subject_id",
    "arm",
    "datetime",
    "study_day",
    "visit",
    "analyte",
    "analyte_label",
    "value",
    "censored",
    "unit",
    "source_file",
    "source_row",
)
DROPPED_COLUMNS = ("source_file", "source_row", "subject_id", "analyte", "value", "unit", "reason")
AE_COLUMNS = ("subject_id", "arm", "day", "term", "grade", "related_to_infusion")
SCAN_ID_COLUMNS = ("scan_id", "subject_id", "arm", "scan_date", "study_day", "visit", "status", "exclusion_reason")

_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}
_VALUE_RE = re.compile(r"^\s*(<=|>=|≤|≥|<|>)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_WIDE_HEADER_RE = re.compile(r"^(?P<name>.*?)\s*\[(?P<unit>[^\]]*)\]\s*$")
_TIME_COLUMNS = ("datetime", "date", "study_day")


# ----------------------------------------------------------------------------------------------------- catalog
def _name_key(text: str) -> str:
    """Matching key of an analyte name: lower case, Greek alpha spelled out, letters and digits only."""
    text = str(text).strip().lower().replace("α", "alpha")
    return re.sub(r"[^0-9a-z]", "", text)


def _unit_key(text: str) -> str:
    """Matching key of a unit spelling: lower case, no spaces, micro as ``u``, ``10*9``/``x10^9`` as ``10^9``."""
    text = str(text).strip().lower()
    for micro in ("µ", "μ"):
        text = text.replace(micro, "u")
    text = re.sub(r"\s+", "", text).replace("×", "x").replace("**", "^").replace("*", "^")
    return re.sub(r"^x(?=10)", "", text)


@dataclass(frozen=True)
class LabCatalog:
    """Known analytes (canonical slug, label, canonical unit), their synonyms and unit conversions.

    Attributes
    ----------
    labels : dict
        Slug -> display label, in the order of the analytes table.
    units : dict
        Slug -> canonical unit (as spelled in the units table).
    names : dict
        Name key (see module docstring) -> slug; holds slugs, labels and synonyms.
    factors : dict
        ``(slug, unit key)`` -> factor: value in the canonical unit = value in that unit * factor.
    """

    labels: dict[str, str]
    units: dict[str, str]
    names: dict[str, str]
    factors: dict[tuple[str, str], float]

    def analyte(self, name: str) -> str | None:
        """Canonical slug of an analyte name or synonym, None when unknown."""
        return self.names.get(_name_key(name))

    def factor(self, slug: str, unit: str) -> float | None:
        """Factor from ``unit`` to the canonical unit of ``slug``, None when the unit is unknown for it."""
        return self.factors.get((slug, _unit_key(unit)))


def load_catalog(units_csv: str | Path, analytes_csv: str | Path) -> LabCatalog:
    """Read the unit table and the analyte (synonym) table.

    Parameters
    ----------
    units_csv : path
        Columns ``analyte, unit, factor, canonical``: one row per accepted unit spelling; exactly one row per
        analyte has ``canonical`` true (and factor 1).
    analytes_csv : path
        Columns ``analyte, label, synonyms``: canonical slug, display label, ``|``-separated synonyms.

    Raises
    ------
    InputError
        A table is malformed (names the file and row).
    """
    analytes = _read_text_table(analytes_csv)
    units = _read_text_table(units_csv)
    problems: list[str] = []
    for path, table, required in (
        (analytes_csv, analytes, ("analyte", "label")),
        (units_csv, units, ("analyte", "unit", "factor", "canonical")),
    ):
        missing = [c for c in required if c not in table.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    labels: dict[str, str] = {}
    names: dict[str, str] = {}
    for _, row in analytes.iterrows():
        slug = str(row["analyte"]).strip()
        if not re.fullmatch(r"[a-z0-9_]+", slug) or slug in labels:
            where = f"{analytes_csv}, row {row['source_row']}"
            problems.append(f"{where}: analyte slug {slug!r} is not a new [a-z0-9_] slug")
            continue
        labels[slug] = str(row["label"]).strip()
        synonyms = row.get("synonyms")
        candidates = [slug, labels[slug], *(str(synonyms).split("|") if pd.notna(synonyms) else [])]
        for name in candidates:
            key = _name_key(name)
            if key and names.setdefault(key, slug) != slug:
                problems.append(f"{analytes_csv}, row {row['source_row']}: synonym {name!r} already names {names[key]}")
    canonical: dict[str, str] = {}
    factors: dict[tuple[str, str], float] = {}
    for _, row in units.iterrows():
        slug = str(row["analyte"]).strip()
        where = f"{units_csv}, row {row['source_row']}"
        if slug not in labels:
            problems.append(f"{where}: analyte {slug!r} is not in {analytes_csv}")
            continue
        try:
            factor = float(row["factor"])
        except (TypeError, ValueError):
            factor = math.nan
        if not math.isfinite(factor) or factor <= 0:
            problems.append(f"{where}: factor {row['factor']!r} is not a positive number")
            continue
        factors[(slug, _unit_key(row["unit"]))] = factor
        if _parse_bool(row["canonical"]):
            if slug in canonical or factor != 1:
                problems.append(f"{where}: a second canonical unit for {slug}, or a canonical factor other than 1")
            canonical[slug] = str(row["unit"]).strip()
    problems += [f"{units_csv}: no canonical unit for analyte {slug}" for slug in labels if slug not in canonical]
    if problems:
        raise InputError(problem_list("unit tables are invalid", problems))
    return LabCatalog(labels=labels, units=canonical, names=names, factors=factors)


# ------------------------------------------------------------------------------------------------ reading text
def _row(index: int) -> int:
    """Spreadsheet row number of a 0-based data index (the header is row 1)."""
    return int(index) + 2


_SEPARATORS = (",", "\t", ";")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")


def _read_text_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV or Excel (.xlsx, first sheet) table with every cell as text, empty cells as NaN.

    Text files are UTF-8 (a byte-order mark is allowed; UTF-16 with its mark too, as Excel's "Unicode text"
    writes it). The separator is the one of ``,``, tab and ``;`` found most often in the header line (tab for a
    ``.tsv`` file). Lines whose first cell starts with ``#`` are comments; comment and blank lines are skipped.
    Cells and column names are stripped of surrounding blanks; columns with neither a name nor a value (trailing
    separators) are dropped.

    Returns
    -------
    DataFrame
        The header's columns as text, plus ``source_row``: the row as a spreadsheet numbers it (the file's line
        for a text file; the header is row 1 when it is the first line), for error messages. Indexed 0..n-1.

    Raises
    ------
    InputError
        One line naming the file (and the row) when the file is missing, empty, not text, or its rows do not fit
        the header.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    if not path.is_file():
        raise InputError(f"{path}: is a folder, expected a CSV, TSV or .xlsx file")
    suffix = path.suffix.lower()
    if suffix in (".xls", ".ods", ".numbers"):
        raise InputError(f"{path}: {suffix} workbooks are not read; expected CSV, TSV or .xlsx (save it as one)")
    if suffix in _EXCEL_SUFFIXES:
        header, records = _excel_records(path)
    else:
        header, records = _text_records(path, "\t" if suffix == ".tsv" else None)
    return _table(path, header, records)


def _excel_records(path: Path) -> tuple[tuple[int, list[str]], list[tuple[int, list[str]]]]:
    """Header and data rows (spreadsheet row number, cells as text) of the first sheet of a workbook."""
    try:
        sheet = pd.read_excel(path, sheet_name=0, header=None, dtype=object)
    except Exception as exc:  # openpyxl and zipfile raise many kinds for a damaged or foreign file
        kind = type(exc).__name__
        raise InputError(f"{path}: cannot be read as an Excel workbook ({kind}); expected .xlsx") from None
    rows = []
    for number, values in zip(sheet.index, sheet.itertuples(index=False)):
        rows.append((int(number) + 1, ["" if _blank(v) else _excel_text(v) for v in values]))
    rows = [(n, cells) for n, cells in rows if any(cells) and not cells[0].startswith("#")]
    if not rows:
        raise InputError(f"{path}: the first sheet is empty; expected a header row naming the columns")
    return rows[0], rows[1:]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def _excel_text(value: object) -> str:
    """A workbook cell as the text a CSV export would hold: dates ISO, whole numbers without ``.0``."""
    if isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
        stamp = pd.Timestamp(value)
        return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else f"{stamp:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _text_records(path: Path, sep: str | None) -> tuple[tuple[int, list[str]], list[tuple[int, list[str]]]]:
    """Header and data rows (line number, cells) of a CSV/TSV file; comments and blank lines skipped."""
    import csv
    import io

    data = path.read_bytes()
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise InputError(
            f"{path}: is an Excel workbook, not CSV text; expected a .csv/.tsv text file (or name it .xlsx)"
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise InputError(
                f"{path}, row {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text; expected a UTF-8 file "
                "(in Excel: save as 'CSV UTF-8')"
            ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError(f"{path}, row {line}: a NUL character; expected a CSV/TSV text file")
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        raise InputError(f"{path}: the file is empty; expected a header row naming the columns")
    if sep is None:
        sep = max(_SEPARATORS, key=first.count) if any(s in first for s in _SEPARATORS) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    rows: list[tuple[int, list[str]]] = []
    line = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            cells = [c.strip() for c in cells]
            if any(cells) and not cells[0].startswith("#"):
                rows.append((start, cells))
    except csv.Error as exc:
        raise InputError(f"{path}, row {line + 1}: not readable as CSV ({exc})") from None
    return rows[0], rows[1:]


def _table(
    path: Path, header: tuple[int, list[str]], records: list[tuple[int, list[str]]]
) -> pd.DataFrame:
    """Data rows checked against the header, as a frame of text cells (NaN when empty) with ``source_row``."""
    header_row, names = header
    width = max([len(names), *(len(cells) for _, cells in records)])
    names = names + [""] * (width - len(names))
    cells = [row + [""] * (width - len(row)) for _, row in records]
    keep = [j for j, name in enumerate(names) if name or any(row[j] for row in cells)]
    for j in keep:
        if not names[j]:
            n, row = next((n, row) for n, row in records if j < len(row) and row[j])
            raise InputError(
                f"{path}, row {n}: a value {row[j]!r} in column {j + 1}, which has no name in the header (row "
                f"{header_row}); expected as many cells as header columns (a value holding the separator must be "
                "quoted)"
            )
    seen: set[str] = set()
    for j in keep:
        if names[j] in seen:
            raise InputError(f"{path}, row {header_row}: column {names[j]!r} appears twice in the header")
        seen.add(names[j])
    values = [[row[j] or np.nan for j in keep] for row in cells]
    table = pd.DataFrame(values, columns=[names[j] for j in keep], dtype=object)
    return table.assign(source_row=pd.Series([n for n, _ in records], dtype=int))


def _missing_columns(path: Path, missing: Sequence[str], table: pd.DataFrame) -> str:
    """The message of a sheet without required columns: which are missing and which the header holds."""
    found = [c for c in table.columns if c != "source_row"]
    hint = "; columns are separated by ',', ';' or tab" if len(found) == 1 else ""
    return (
        f"{path}, row 1: missing column(s) {', '.join(missing)} (the header has {', '.join(found) or 'nothing'}; "
        f"expected the columns of config/README.md{hint})"
    )


def _parse_bool(text: object) -> bool | None:
    """``true/false`` (also yes/no, 1/0, t/f, y/n; any case) as bool; None when empty or not a boolean."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    key = str(text).strip().lower()
    return True if key in _TRUE else False if key in _FALSE else None


def _is_bool_text(series: pd.Series) -> pd.Series:
    return series.map(lambda v: _parse_bool(v) is not None)


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


_ISO_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"


def _iso_dates(series: pd.Series) -> pd.Series:
    """Text -> Timestamp, NaT where empty, not a calendar date (``2020-02-30``) or not written ``YYYY-MM-DD`` with
    an optional local time ``HH:MM[:SS]`` (``2020/02/17``, ``2020-02``, ``17.02.2020`` and time zones are NaT)."""
    text = series.astype("string").str.strip()
    return pd.to_datetime(text.where(text.str.fullmatch(_ISO_DATE_RE).fillna(False)), errors="coerce", format="ISO8601")


def _lower_columns(table: pd.DataFrame, wanted: Iterable[str]) -> pd.DataFrame:
    """Rename columns that match ``wanted`` case-insensitively to their canonical lower-case name."""
    wanted = set(wanted)
    return table.rename(columns={c: c.lower() for c in table.columns if c.lower() in wanted})


# -------------------------------------------------------------------------------------------- problem reports
# lab checks (pandera check names) -> (column shown, its name in the message, what was expected)
_LAB_PROBLEMS = {
    "known_subject": ("subject_id", "subject_id", "a subject_id of the subjects sheet"),
    "time_text": ("time", "time", "an ISO date or date-time (YYYY-MM-DD or YYYY-MM-DD HH:MM), or a study day number"),
    "value_text": ("value_text", "value", "a number or a censored number such as <0.5 or >1000"),
    "known_analyte": ("analyte_text", "analyte", "a name or synonym of the analytes table"),
    "known_unit": ("unit_text", "unit", "a unit of the units table for this analyte"),
    "in_stay": ("datetime", "datetime", "a date from admission to the later of discharge and the last visit"),
    "not_nullable": ("subject_id", "subject_id", "a value"),
}


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Failing ``(index, check, column, context)`` of a lazily validated frame, one row per index and check.

    ``context`` is ``"Column"`` for a column check and ``"DataFrameSchema"`` for a frame-wide one; the pandera
    uniqueness check of several columns is renamed ``unique_key``. Empty when the frame is valid.
    """
    cols = ["index", "check", "column", "context"]
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases.dropna(subset=["index"])
        cases = pd.DataFrame(
            {
                "index": cases["index"].astype(int),
                "check": cases["check"].astype(str).replace("multiple_fields_uniqueness", "unique_key"),
                "column": cases["column"],
                "context": cases["schema_context"],
            }
        )
        return cases.drop_duplicates(["index", "check"])[cols]
    return pd.DataFrame(columns=cols)


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


def _sheet_messages(frame: pd.DataFrame, cases: pd.DataFrame, path: Path) -> list[str]:
    """Problem lines of failing rows of a subjects or adverse-events sheet (``source_row`` column)."""
    messages = []
    for case in cases.itertuples():
        row = frame.loc[case.index]
        where = f"{path}, row {row['source_row']}"
        if case.context == "DataFrameSchema" and case.check != "unique_key":
            messages.append(f"{where}: expected {case.check}")
            continue
        value = row.get(case.column)
        shown = "(empty)" if pd.isna(value) else repr(str(value))
        expected = {"not_nullable": "a value", "field_uniqueness": "a value not used in another row"}.get(
            case.check, case.check
        )
        messages.append(f"{where}: {case.column} {shown} (expected {expected})")
    return messages


# ---------------------------------------------------------------------------------------------------- subjects
def read_subjects(path: str | Path, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read and validate the subjects sheet (one row per subject).

    Parameters
    ----------
    path : path
        CSV/TSV/xlsx with at least ``subject_id, arm, admission_date, day0_date``; optional ``discharge_date``
        (empty: not discharged, censored), ``age`` (years), ``sex``, ``severity``, ``mechanical_ventilation,
        oxygen_support, fever, cough, dyspnoea, infusion_adverse_event`` (kept as text unless ``columns`` names
        their kind) and ``days_to_symptom_resolution`` (days from day 0; empty: not resolved, censored).
        Other columns are ignored (and never copied to outputs) unless named in ``columns``.
    columns : mapping, optional
        Further sheet columns the analysis plan reads (:meth:`lungtrial.stats.Plan.subject_columns`), with their
        kind: ``bool`` (true/false, parsed to nullable booleans), ``number`` (>= 0, float) or ``text``. A column
        named here must be in the sheet.

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
    missing = [c for c in ("subject_id", "arm", "admission_date", "day0_date") if c not in raw.columns]
    if missing:
        raise InputError(_missing_columns(path, missing, raw))
    if raw.empty:
        raise InputError(f"{path}: no rows below the header; expected one row per subject")
    columns = dict(columns or {})
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} named by the analysis plan (config analysis)")
    bool_columns = [c for c, kind in columns.items() if kind == "bool"]
    number_columns = [c for c, kind in columns.items() if kind == "number" and c not in ("age",)]
    for col in SHEET_SUBJECT_COLUMNS:
        if col not in raw.columns:
            raw[col] = np.nan
    raw = raw.assign(source_file=str(path))

    def iso(nullable: bool) -> pa.Column:
        return pa.Column(
            object,
            pa.Check(lambda s: _iso_dates(s).notna(), error="an ISO date YYYY-MM-DD"),
            nullable=nullable,
        )

    def number() -> pa.Column:
        check = pa.Check(lambda s: pd.to_numeric(s, errors="coerce").ge(0), error="a number >= 0")
        return pa.Column(object, check, nullable=True)

    def stay_order(df: pd.DataFrame) -> pd.Series:
        adm, day0, dis = (_iso_dates(df[c]) for c in ("admission_date", "day0_date", "discharge_date"))
        return ~((day0 < adm) | (dis < day0))

    schema = pa.DataFrameSchema(
        {
            "subject_id": pa.Column(
                object,
                pa.Check.str_matches(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", error="a subject ID ([A-Za-z0-9._-])"),
                unique=True,
                report_duplicates="all",
            ),
            "arm": pa.Column(object),
            "admission_date": iso(False),
            "day0_date": iso(False),
            "discharge_date": iso(True),
            "age": number(),
            "days_to_symptom_resolution": number(),
            **{col: number() for col in number_columns},
            **{
                col: pa.Column(object, pa.Check(_is_bool_text, error="true or false"), nullable=True)
                for col in bool_columns
            },
        },
        checks=[pa.Check(stay_order, error="admission_date <= day0_date <= discharge_date", ignore_na=False)],
    )
    problems = _sheet_messages(raw, _failures(schema, raw), path)
    if problems:
        raise InputError(problem_list("subjects sheet is invalid", _sorted(problems)))
    extra = [c for c in columns if c not in SHEET_SUBJECT_COLUMNS]
    out = raw[[*SHEET_SUBJECT_COLUMNS, *extra, "source_file", "source_row"]].copy()
    for col in ("admission_date", "day0_date", "discharge_date"):
        out[col] = _iso_dates(out[col]).dt.normalize()
    for col in ("age", "days_to_symptom_resolution", *number_columns):
        out[col] = pd.to_numeric(out[col]).astype(float)
    for col in bool_columns:
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


# ------------------------------------------------------------------------------------------------------- scans
SCAN_SHEET_COLUMNS = ("scan_id", "subject_id", "scan_date", "study_day", "dicom_dir")
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def read_scans(path: str | Path, subjects: pd.DataFrame) -> pd.DataFrame:
    """Read and validate the scans sheet (one row per CT scan).

    Parameters
    ----------
    path : path
        CSV/TSV/xlsx with ``scan_id`` (unique; letters, digits, ``.``, ``_``, ``-``: it names the scan's results
        folder), ``subject_id`` (of the subjects sheet), ``scan_date`` (ISO date) or ``study_day`` (whole days
        from day 0; used where ``scan_date`` is empty) and ``dicom_dir`` (the study folder, relative to the
        sheet's folder unless absolute; one folder per scan). Other columns are ignored.
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
    missing = [c for c in ("scan_id", "subject_id", "dicom_dir") if c not in raw.columns]
    if "scan_date" not in raw.columns and "study_day" not in raw.columns:
        missing.append("scan_date (or study_day)")
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

    def whole_days(col: pd.Series) -> pd.Series:
        number = pd.to_numeric(col, errors="coerce")
        return number.notna() & (number == number.round())

    schema = pa.DataFrameSchema(
        {
            "scan_id": pa.Column(
                object,
                pa.Check.str_matches(_ID_PATTERN, error="a scan ID of letters, digits, '.', '_', '-'"),
                unique=True,
                report_duplicates="all",
            ),
            "subject_id": pa.Column(
                object, pa.Check.isin(set(subjects["subject_id"]), error="a subject_id of the subjects sheet")
            ),
            "scan_date": pa.Column(
                object, pa.Check(lambda s: _iso_dates(s).notna(), error="an ISO date YYYY-MM-DD"), nullable=True
            ),
            "study_day": pa.Column(object, pa.Check(whole_days, error="a whole number of days"), nullable=True),
            "dicom_dir": pa.Column(object),
        },
        checks=[
            pa.Check(
                lambda df: df["scan_date"].notna() | df["study_day"].notna(),
                error="a scan_date or a study_day",
                ignore_na=False,
            ),
            pa.Check(
                lambda df: dates.isna() | days.isna() | day0.isna() | ((dates - day0).dt.days == days),
                error="scan_date and study_day to agree (study_day = scan_date - day0_date of the subject)",
                ignore_na=False,
            ),
        ],
    )
    problems = _sheet_messages(raw, _failures(schema, raw), path)  # dicom_dir fails only when empty
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


# -------------------------------------------------------------------------------------------------------- labs
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
        Lab files (long or wide layout, CSV/TSV/xlsx; see the module docstring).
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


def _sorted(messages: Iterable[str]) -> list[str]:
    """Problem lines ordered by file and row number."""

    def key(msg: str) -> tuple[str, int, str]:
        m = re.match(r"^(.*), row (\d+):", msg)
        return (m.group(1), int(m.group(2)), msg) if m else (msg, 0, msg)

    return sorted(dict.fromkeys(messages), key=key)


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


# -------------------------------------------------------------------------------------------- adverse events
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


# ------------------------------------------------------------------------------------------------------ visits
def visit_windows(visits: Mapping[str, Sequence[float]]) -> list[tuple[str, float, float]]:
    """Validate visit windows (name -> inclusive study-day ``[lo, hi]``); sorted by ``lo``, non-overlapping.

    Raises
    ------
    ValueError
        A window is not ``[lo, hi]`` with ``lo <= hi``, or two windows overlap.
    """
    windows = []
    for name, bounds in visits.items():
        if len(bounds) != 2 or not float(bounds[0]) <= float(bounds[1]):
            raise ValueError(f"clinical.visits.{name}: expected [first_day, last_day], got {list(bounds)}")
        windows.append((str(name), float(bounds[0]), float(bounds[1])))
    windows.sort(key=lambda w: w[1])
    for (a, _, a_hi), (b, b_lo, _) in zip(windows, windows[1:]):
        if b_lo <= a_hi:
            raise ValueError(f"clinical.visits: windows {a} and {b} overlap")
    return windows


def _visit_target(name: str, lo: float, hi: float) -> float:
    """Nominal study day of a visit: the number ending its name (``day14`` -> 14) when inside the window,
    else the window's midpoint."""
    m = re.search(r"(\d+)$", name)
    return float(m.group(1)) if m and lo <= float(m.group(1)) <= hi else (lo + hi) / 2


def assign_visits(
    frame: pd.DataFrame,
    windows: Sequence[tuple[str, float, float]],
    by: Sequence[str],
    day: str = "study_day",
    prefer: pd.Series | None = None,
    first_dose_day: float | None = None,
) -> pd.Series:
    """Label rows with nominal visits; at most one row per visit and group.

    A row is in a window when its whole study day (``floor(day)``) lies in ``[lo, hi]``. When several rows of a
    group (e.g. one subject's scans, or one subject's CRP values) fall into one window, one is taken:

    1. rows where ``prefer`` is true first (e.g. measured scans before excluded ones);
    2. for a window containing day 0 (baseline): the last row taken before the first dose; a row taken after it
       is never baseline, so a group whose only rows in the window follow the dose has no baseline row (see
       ``first_dose_day``);
    3. for other windows: the row closest to the nominal day (the number ending the visit name, ``day14`` ->
       14, else the window's midpoint); on a tie the earlier row.

    Parameters
    ----------
    frame : DataFrame
        Holds ``day`` (study days, float) and the ``by`` columns.
    windows : sequence
        From :func:`visit_windows`.
    by : sequence of str
        Grouping columns.
    day : str
        Column of study days.
    prefer : Series of bool, optional
        Rows to take first.
    first_dose_day : float, optional
        The first dose as a study day (days from midnight of day 0; 0.375 is 09:00 on day 0), for rows with a time
        of day (labs): a row is before the dose when its study day is less. None for rows with a date only
        (scans): a row dated on or before day 0 counts as before the dose, since the baseline CT is scheduled
        before the first dose.

    Returns
    -------
    Series of str
        Visit name, or ``""`` for rows outside every window or not taken, aligned with ``frame``.
    """
    out = pd.Series("", index=frame.index, dtype=object)
    days = frame[day].astype(float)
    whole = np.floor(days)
    rank_prefer = (~prefer.astype(bool)).astype(int) if prefer is not None else pd.Series(0, index=frame.index)
    for name, lo, hi in windows:
        inside = whole.between(lo, hi)
        if lo <= 0 <= hi:  # baseline: the last row before the first dose
            inside &= whole <= 0 if first_dose_day is None else days < float(first_dose_day)
            primary, secondary = pd.Series(0, index=frame.index), -days
        else:
            primary, secondary = (days - _visit_target(name, lo, hi)).abs(), days
        if not inside.any():
            continue
        ranked = pd.DataFrame(
            {"p": rank_prefer, "a": primary, "b": secondary, **{f"g{i}": frame[c] for i, c in enumerate(by)}}
        )[inside]
        ranked = ranked.sort_values(["p", "a", "b"], kind="stable")
        first = ranked.groupby([f"g{i}" for i in range(len(by))], sort=False, dropna=False).head(1).index
        out.loc[first] = name
    return out


# ------------------------------------------------------------------------------------------------------- joins
def nearest_labs(scans: pd.DataFrame, labs: pd.DataFrame, window_days: float) -> pd.DataFrame:
    """The nearest lab value of each analyte for each scan, within ``+/- window_days`` calendar days.

    Gaps are counted in calendar days (scans carry a date, not a time): ``gap_days`` = lab date - scan date
    (negative: the lab was taken before the scan). Ties go to the earlier sample: a lab the day before beats
    one the day after, and of several samples on one day the first is taken.

    Parameters
    ----------
    scans : DataFrame
        ``scan_id, subject_id, scan_date`` (Timestamps).
    labs : DataFrame
        The labs table (``subject_id, analyte, datetime, value, censored``).
    window_days : float
        Largest accepted ``|gap_days|``, days.

    Returns
    -------
    DataFrame
        ``scan_id, analyte, value, censored, gap_days``; one row per scan and analyte that has a value in the
        window.
    """
    cols = ["scan_id", "analyte", "value", "censored", "gap_days"]
    if not len(scans) or not len(labs):
        return pd.DataFrame(columns=cols)
    tolerance = int(math.floor(window_days))
    epoch = pd.Timestamp("1970-01-01")
    lab = labs[["subject_id", "analyte", "datetime", "value", "censored"]].copy()
    lab["key"] = ((lab["datetime"].dt.normalize() - epoch) // pd.Timedelta(days=1)).astype("int64")
    lab = lab.sort_values(["datetime"], kind="stable").drop_duplicates(["subject_id", "analyte", "key"])
    lab["lab_key"] = lab["key"]
    left = scans[["scan_id", "subject_id"]].assign(
        key=((pd.to_datetime(scans["scan_date"]).dt.normalize() - epoch) // pd.Timedelta(days=1)).astype("int64")
    )
    left = left.merge(pd.DataFrame({"analyte": lab["analyte"].unique()}), how="cross").sort_values("key")
    lab = lab.sort_values("key")
    picks = []
    for direction in ("backward", "forward"):
        hit = pd.merge_asof(
            left,
            lab.drop(columns="datetime"),
            on="key",
            by=["subject_id", "analyte"],
            direction=direction,
            tolerance=tolerance,
        ).dropna(subset=["lab_key"])
        picks.append(hit.assign(gap_days=hit["lab_key"] - hit["key"]))
    both = pd.concat(picks, ignore_index=True)
    both = both.assign(_abs=both["gap_days"].abs()).sort_values(["_abs", "gap_days"], kind="stable")
    best = both.drop_duplicates(["scan_id", "analyte"])
    return best[cols].sort_values(["scan_id", "analyte"]).reset_index(drop=True)


def scan_table(
    metrics: pd.DataFrame,
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    visits: Mapping[str, Sequence[float]],
    window_days: float,
    analytes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The ``scans`` table: imaging metrics per scan with study day, visit and the nearest lab values.

    Parameters
    ----------
    metrics : DataFrame
        ``results/imaging/metrics.csv``: ``scan_id, subject_id, scan_date, status, exclusion_reason`` and the
        metric columns.
    subjects : DataFrame
        From :func:`read_subjects` or :func:`subject_table`.
    labs : DataFrame
        The labs table.
    visits : mapping
        Visit windows (config ``clinical.visits``); measured (``status == "ok"``) scans are preferred.
    window_days : float
        Lab window, days (config ``clinical.lab_window_days``).
    analytes : sequence of str, optional
        Slugs that get columns (default: those in ``labs``, in their order of appearance).

    Returns
    -------
    DataFrame
        :data:`SCAN_ID_COLUMNS`, the metric columns, then per analyte ``<slug>``, ``<slug>_censored`` and
        ``<slug>_gap_days`` (NaN / ``""`` when no value lies in the window).

    Raises
    ------
    InputError
        A scan names an unknown subject, has no date, or a scan_id repeats.
    """
    source = "imaging metrics"
    missing = [c for c in ("scan_id", "subject_id", "scan_date", "status") if c not in metrics.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
    metrics = metrics.reset_index(drop=True)
    if "exclusion_reason" not in metrics.columns:
        metrics = metrics.assign(exclusion_reason=np.nan)
    problems = []
    if metrics["scan_id"].duplicated().any():
        repeated = metrics.loc[metrics["scan_id"].duplicated(), "scan_id"]
        problems.append(f"{source}: duplicate scan_id {', '.join(repeated)}")
    unknown = ~metrics["subject_id"].isin(set(subjects["subject_id"]))
    problems += [
        f"{source}: scan {scan} names subject {subject!r} not in the subjects sheet"
        for scan, subject in zip(metrics.loc[unknown, "scan_id"], metrics.loc[unknown, "subject_id"])
    ]
    dates = _iso_dates(metrics["scan_date"].astype(str))
    problems += [f"{source}: scan {s} has no ISO scan_date" for s in metrics.loc[dates.isna(), "scan_id"]]
    if problems:
        raise InputError("\n".join(problems))
    info = subjects.set_index("subject_id")
    base = metrics.drop(columns=["scan_date", "study_day", "arm", "visit"], errors="ignore")
    scans = pd.DataFrame(
        {
            "scan_id": metrics["scan_id"],
            "subject_id": metrics["subject_id"],
            "arm": metrics["subject_id"].map(info["arm"]),
            "scan_date": dates.dt.normalize(),
            "study_day": (dates.dt.normalize() - metrics["subject_id"].map(info["day0_date"])).dt.days.astype(int),
        }
    )
    scans["visit"] = assign_visits(scans, visit_windows(visits), by=["subject_id"], prefer=metrics["status"].eq("ok"))
    metric_cols = [c for c in base.columns if c not in SCAN_ID_COLUMNS]
    out = scans.join(base[["status", "exclusion_reason", *metric_cols]])
    near = nearest_labs(scans, labs, window_days)
    slugs = list(analytes) if analytes is not None else list(dict.fromkeys(labs["analyte"]))
    for slug in slugs:
        hit = near[near["analyte"] == slug].set_index("scan_id")
        out[slug] = out["scan_id"].map(hit["value"]).astype(float)
        out[f"{slug}_censored"] = out["scan_id"].map(hit["censored"]).fillna("")
        out[f"{slug}_gap_days"] = out["scan_id"].map(hit["gap_days"]).astype(float)
    return out.sort_values(["subject_id", "scan_date", "scan_id"], kind="stable").reset_index(drop=True)


def count_scans(subjects: pd.DataFrame, scans: pd.DataFrame) -> pd.DataFrame:
    """``subjects`` with ``n_scans``: the number of scans of each subject in the scans table (measured or not)."""
    counts = scans.groupby("subject_id").size()
    return subjects.assign(n_scans=subjects["subject_id"].map(counts).fillna(0).astype(int))


def lab_coverage(labs: pd.DataFrame) -> pd.DataFrame:
    """Subjects with a value per analyte, visit and arm (visit ``"any"``: at any time).

    Returns
    -------
    DataFrame
        ``analyte, analyte_label, visit, arm, n_subjects, n_values, n_censored``.
    """
    cols = ["analyte", "analyte_label", "visit", "arm", "n_subjects", "n_values", "n_censored"]
    if not len(labs):
        return pd.DataFrame(columns=cols)
    tagged = pd.concat([labs.assign(visit="any"), labs[labs["visit"] != ""]], ignore_index=True)
    table = (
        tagged.groupby(["analyte", "analyte_label", "visit", "arm"], sort=False)
        .agg(
            n_subjects=("subject_id", "nunique"),
            n_values=("value", "size"),
            n_censored=("censored", lambda c: int((c != "").sum())),
        )
        .reset_index()
    )
    visit_order = ["any", *labs[labs["visit"] != ""].groupby("visit")["study_day"].median().sort_values().index]
    analyte_order = list(dict.fromkeys(labs["analyte"]))
    table = table.assign(
        _a=table["analyte"].map(analyte_order.index), _v=table["visit"].map(visit_order.index)
    ).sort_values(["_a", "_v", "arm"])
    return table[cols].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- dictionary
_DICTIONARY = {
    "subjects": [
        ("subject_id", "trial subject ID", ""),
        ("arm", "treatment arm", ""),
        ("admission_date", "date of hospital admission", "date"),
        ("day0_date", "study day 0 (first infusion / enrolment)", "date"),
        ("discharge_date", "date of discharge (empty: not discharged)", "date"),
        ("age", "age", "years"),
        ("sex", "sex", ""),
        ("severity", "disease severity at enrolment", ""),
        ("mechanical_ventilation", "mechanical ventilation during the stay", "bool"),
        ("oxygen_support", "oxygen support during the stay, as in the sheet (e.g. none, low-flow, high-flow)", ""),
        ("fever", "fever at enrolment", "bool"),
        ("cough", "cough at enrolment", "bool"),
        ("dyspnoea", "dyspnoea at enrolment", "bool"),
        ("days_to_symptom_resolution", "days from day 0 to symptom resolution, or to the last contact when "
         "symptom_resolved is false (censored); last contact = later of discharge and last lab sample", "days"),
        ("infusion_adverse_event", "adverse event related to an infusion", "bool"),
        ("length_of_stay_days", "discharge_date - admission_date", "days"),
        ("days_to_discharge", "discharge_date - day0_date, or days to the last contact when discharged is false "
         "(censored)", "days"),
        ("discharged", "discharged (false: censored)", "bool"),
        ("symptom_resolved", "symptoms resolved (false: censored)", "bool"),
        ("n_scans", "scans of the subject in the imaging metrics (measured or excluded)", "count"),
    ],
    "labs": [
        ("subject_id", "trial subject ID", ""),
        ("arm", "treatment arm", ""),
        ("datetime", "date and time of the sample", "datetime"),
        ("study_day", "days from day 0 (midnight) to the sample, to 4 decimals", "days"),
        ("visit", "nominal visit (one value per subject, analyte and visit; empty: none)", ""),
        ("analyte", "canonical analyte slug", ""),
        ("analyte_label", "analyte display name", ""),
        ("value", "value in the canonical unit; for a censored value its limit", "see unit"),
        ("censored", "'<' below / '>' above the limit in value, '' not censored", ""),
        ("unit", "canonical unit of the analyte", ""),
        ("source_file", "lab file the value comes from", ""),
        ("source_row", "row in that file (header = row 1)", ""),
    ],
    "adverse_events": [
        ("subject_id", "trial subject ID", ""),
        ("arm", "treatment arm", ""),
        ("day", "study day of onset", "days"),
        ("term", "adverse event term", ""),
        ("grade", "severity grade (CTCAE 1-5)", "grade"),
        ("related_to_infusion", "related to an infusion", "bool"),
    ],
    "dropped_labs": [
        ("source_file", "lab file", ""),
        ("source_row", "row in that file (header = row 1)", ""),
        ("subject_id", "trial subject ID as written", ""),
        ("analyte", "analyte as written", ""),
        ("value", "value as written", ""),
        ("unit", "unit as written", ""),
        ("reason", "why the row was left out", ""),
    ],
    "lab_coverage": [
        ("analyte", "canonical analyte slug", ""),
        ("analyte_label", "analyte display name", ""),
        ("visit", "nominal visit, or 'any'", ""),
        ("arm", "treatment arm", ""),
        ("n_subjects", "subjects with a value", "count"),
        ("n_values", "values", "count"),
        ("n_censored", "censored values", "count"),
    ],
}
_SCAN_BASE = [
    ("scan_id", "scan ID", ""),
    ("subject_id", "trial subject ID", ""),
    ("arm", "treatment arm", ""),
    ("scan_date", "date of the scan", "date"),
    ("study_day", "days from day 0 to the scan", "days"),
    ("visit", "nominal visit (one scan per subject and visit; empty: none)", ""),
    ("status", "'ok' (measured) or 'excluded'", ""),
    ("exclusion_reason", "why the scan was not measured", ""),
]


def _metric_entry(column: str) -> tuple[str, str]:
    """Meaning and unit of an imaging metric column, from its name."""
    name = column.replace("_", " ")
    if column.startswith("pct_"):
        return f"{column[4:].replace('_', ' ')} as a percentage of the lung volume", "%"
    if column.endswith("_ml"):
        return f"{name[:-3]} volume", "mL"
    if column.endswith("_hu"):
        return f"{name[:-3]} attenuation of the lungs", "HU"
    if column == "severity_score":
        return "CT severity score (0-24, sum of the six lung regions' involvement scores 0-4)", "points"
    return f"imaging metric {name}", ""


def data_dictionary(catalog: LabCatalog, scans: pd.DataFrame | None = None) -> pd.DataFrame:
    """The data dictionary of the clinical stage's tables (``column, table, meaning, unit``).

    Parameters
    ----------
    catalog : LabCatalog
        Gives the labels and canonical units of the per-analyte scan columns.
    scans : DataFrame, optional
        The scans table; its metric and analyte columns are described. Without it the scans table is left out.
    """
    rows = [(c, table, m, u) for table, entries in _DICTIONARY.items() for c, m, u in entries]
    if scans is not None:
        rows += [(c, "scans", m, u) for c, m, u in _SCAN_BASE]
        for col in scans.columns[len(SCAN_ID_COLUMNS):]:
            slug = col.removesuffix("_censored").removesuffix("_gap_days")
            if slug in catalog.labels:
                label, unit = catalog.labels[slug], catalog.units[slug]
                if col.endswith("_censored"):
                    rows.append((col, "scans", f"{label}: '<' / '>' when the value is a censoring limit", ""))
                elif col.endswith("_gap_days"):
                    rows.append((col, "scans", f"{label}: lab date - scan date of that value", "days"))
                else:
                    rows.append((col, "scans", f"{label}: nearest value within the lab window", unit))
            else:
                meaning, unit = _metric_entry(col)
                rows.append((col, "scans", meaning, unit))
    return pd.DataFrame(rows, columns=["column", "table", "meaning", "unit"])


# ------------------------------------------------------------------------------------------------------ output
def write_table(table: pd.DataFrame, *paths: str | Path) -> None:
    """Write a table to each path, as CSV (``.csv``) or Parquet (``.parquet``, pyarrow), atomically.

    In a CSV, date columns are written ``YYYY-MM-DD`` (``YYYY-MM-DD HH:MM`` when any value has a time of day)
    and missing values as empty cells; Parquet keeps the column types.
    """
    text = table.copy()
    for col in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[col]):
            times = text[col].dropna()
            fmt = "%Y-%m-%d" if (times == times.dt.normalize()).all() else "%Y-%m-%d %H:%M"
            text[col] = text[col].dt.strftime(fmt)
    for path in map(Path, paths):
        if path.suffix not in (".csv", ".parquet"):
            raise ValueError(f"{path}: expected a .csv or .parquet file name")
        with atomic_path(path) as tmp:
            if path.suffix == ".csv":
                text.to_csv(tmp, index=False)
            else:
                table.to_parquet(tmp, index=False, engine="pyarrow")
