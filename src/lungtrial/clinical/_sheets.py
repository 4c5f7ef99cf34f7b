"""Reading the trial's sheets: CSV, TSV or Excel tables as text with their spreadsheet row numbers, their rows
checked against the sheet's JSON schema (``schemas/<sheet>.schema.yaml`` beside this module), and the problem lines
of a sheet that fails its checks. The columns of the tidy tables are in :mod:`lungtrial.clinical._columns`."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from lungtrial.clinical._columns import _schema
from lungtrial.clinical._dates import _is_iso_date
from lungtrial.errors import InputError


def sheet_schema(sheet: str) -> dict:
    """The JSON schema (draft 2020-12) one row of a sheet must satisfy: its columns, their types and formats.

    Parameters
    ----------
    sheet : {"subjects", "scans"}
        Which sheet.

    Returns
    -------
    dict
        A copy of ``lungtrial/clinical/schemas/<sheet>.schema.yaml``. Besides the standard keywords, a column's
        ``expected`` says what an error message expects, and the format ``iso-date`` is ``YYYY-MM-DD`` (a local time
        ``HH:MM[:SS]`` after it is allowed), a real calendar date.
    """
    return copy.deepcopy(_schema(sheet))

_TRUE = {"true", "yes", "y", "1", "t"}

_FALSE = {"false", "no", "n", "0", "f"}


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


def _lower_columns(table: pd.DataFrame, wanted: Iterable[str]) -> pd.DataFrame:
    """Rename columns that match ``wanted`` case-insensitively to their canonical lower-case name."""
    wanted = set(wanted)
    return table.rename(columns={c: c.lower() for c in table.columns if c.lower() in wanted})


def _required_missing(schema: Mapping, table: pd.DataFrame) -> list[str]:
    """Columns the schema requires that the sheet's header lacks (``a (or b)`` for a choice of columns)."""
    missing = [c for c in schema.get("required", ()) if c not in table.columns]
    for part in schema.get("allOf", ()):
        choice = [c for alt in part.get("anyOf", ()) for c in alt.get("required", ())]
        if choice and not any(c in table.columns for c in choice):
            missing.append(f"{choice[0]} (or {', '.join(choice[1:])})")
    return missing


def _cell(text: object, prop: Mapping) -> object:
    """A text cell as the schema's type of its column: a number or a boolean when it reads as one, else the text
    (which the schema then rejects)."""
    kind = prop.get("type")
    if kind in ("number", "integer"):
        try:
            number = float(str(text))
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        value = _parse_bool(text)
        return text if value is None else value
    return text


def _schema_messages(table: pd.DataFrame, schema: Mapping, path: Path) -> list[str]:
    """Problem lines (file, row, column, value, what was expected) of the rows that fail the JSON ``schema``.

    Each row is checked as an object of its non-empty cells in the schema's columns (:func:`_cell`); one line per
    row and column, the first problem found.
    """
    from jsonschema import Draft202012Validator, FormatChecker

    formats = FormatChecker(formats=())
    formats.checks("iso-date")(_is_iso_date)
    validator = Draft202012Validator(schema, format_checker=formats)
    props = schema.get("properties", {})
    columns = [c for c in props if c in table.columns]
    messages: dict[tuple[int, str], str] = {}
    for number, *cells in table[["source_row", *columns]].itertuples(index=False):
        text = {c: v for c, v in zip(columns, cells, strict=True) if not _blank(v)}
        row = {c: _cell(v, props[c]) for c, v in text.items()}
        where = f"{path}, row {number}"
        for error in validator.iter_errors(row):
            if error.validator == "required":
                for column in (c for c in error.validator_value if c not in row):
                    messages.setdefault((number, column), f"{where}: {column} (empty) (expected a value)")
            elif error.path:
                column = str(error.path[0])
                expected = props.get(column, {}).get("expected", "a value")
                messages.setdefault((number, column), f"{where}: {column} {str(text[column])!r} (expected {expected})")
            else:
                expected = error.schema.get("expected", error.message) if isinstance(error.schema, Mapping) else ""
                messages.setdefault((number, expected), f"{where}: expected {expected}")
    return list(messages.values())


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


def _sorted(messages: Iterable[str]) -> list[str]:
    """Problem lines ordered by file and row number."""

    def key(msg: str) -> tuple[str, int, str]:
        m = re.match(r"^(.*), row (\d+):", msg)
        return (m.group(1), int(m.group(2)), msg) if m else (msg, 0, msg)

    return sorted(dict.fromkeys(messages), key=key)
