"""Tests for lungtrial.clinical._columns: the sheets' and tidy tables' columns, read from the shipped schemas."""

from __future__ import annotations

import subprocess
import sys

from lungtrial.clinical import _columns


def test_subject_columns_are_the_schema_then_the_derived_ones():
    schema = _columns._schema("subjects")
    assert schema["type"] == "object" and _columns.SHEET_SUBJECT_COLUMNS == tuple(schema["properties"])
    assert _columns.SHEET_SUBJECT_COLUMNS[0] == "subject_id"
    assert {"arm", "day0_date"} <= set(_columns.SHEET_SUBJECT_COLUMNS)
    assert _columns.SUBJECT_COLUMNS == _columns.SHEET_SUBJECT_COLUMNS + _columns.DERIVED_SUBJECT_COLUMNS
    assert not set(_columns.SHEET_SUBJECT_COLUMNS) & set(_columns.DERIVED_SUBJECT_COLUMNS)


def test_schemas_are_read_once():
    assert _columns._schema("scans") is _columns._schema("scans")
    assert "scan_id" in _columns._schema("scans")["properties"]


def test_no_table_repeats_a_column():
    for cols in (_columns.SUBJECT_COLUMNS, _columns.LAB_COLUMNS, _columns.AE_COLUMNS, _columns.SCAN_ID_COLUMNS,
                 _columns.DROPPED_COLUMNS):
        assert len(set(cols)) == len(cols), cols


def test_importing_the_columns_stays_light():
    code = (
        "import sys, lungtrial.clinical._columns; "
        "print(sorted(m for m in ('pandas', 'pandera', 'jsonschema', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
