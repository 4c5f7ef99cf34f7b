"""The columns of the trial's sheets and of the clinical stage's tidy tables.

The subjects sheet's columns are the properties of its JSON schema (``schemas/subjects.schema.yaml`` beside this
module). Light imports only (no pandas or pandera): the demo design and the analysis plan read these names while
the workflow builds its job graph.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def _schema(sheet: str) -> dict:
    """The JSON schema of a row of ``sheet`` (``"subjects"``, ``"scans"``), shipped with the package."""
    import yaml

    text = resources.files("lungtrial.clinical").joinpath("schemas", f"{sheet}.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


SHEET_SUBJECT_COLUMNS = tuple(_schema("subjects")["properties"])
"""The subjects sheet's columns that are read (the properties of its schema, in order)."""

DERIVED_SUBJECT_COLUMNS = (
    "length_of_stay_days",
    "days_to_discharge",
    "discharged",
    "symptom_resolved",
    "n_scans",
)
"""Columns of the subjects table derived by the clinical stage (:func:`subject_table`, :func:`count_scans`), not
read from the sheet."""

SUBJECT_COLUMNS = (*SHEET_SUBJECT_COLUMNS, *DERIVED_SUBJECT_COLUMNS)
"""Columns of the subjects table: the sheet's, then the derived ones."""

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
