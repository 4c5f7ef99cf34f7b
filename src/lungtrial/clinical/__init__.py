"""Clinical data of a trial: subjects and outcomes, labs (units, censoring, validation), study days, visits, joins.

Everything public is imported from here (``from lungtrial import clinical``; ``clinical.read_labs(...)``); the
modules behind it are private, one per topic:

===================  =========================================================================================
``_columns``         the columns of the sheets and of the tidy tables (light: read when the workflow starts)
``_sheets``          reading a sheet (CSV, TSV, .xlsx) as text with its spreadsheet row numbers, its rows checked
                     against the sheet's JSON schema, problem lines
``_dates``           ISO dates and date-times as the sheets write them
``_catalog``         the lab catalogue: analytes, synonyms, unit spellings and factors (:func:`load_catalog`)
``_labs``            lab files, long and wide form, values and censored values (:func:`read_labs`,
                     :func:`parse_value`, :func:`wide_to_long`)
``_subjects``        the subjects sheet, the outcomes derived from it, the compared arms (:func:`read_subjects`,
                     :func:`subject_table`, :func:`check_arms`)
``_scans``           the scans sheet (:func:`read_scans`)
``_adverse_events``  the adverse-events sheet (:func:`read_adverse_events`)
``_visits``          visit windows and the baseline before the first dose (:func:`visit_windows`,
                     :func:`assign_visits`)
``_joins``           the nearest lab per scan, the ``scans`` table, scan counts, lab coverage, the tables of
                     ``clinical_scans`` (:func:`scan_tables`)
``_dictionary``      the data dictionary of the clinical tables
===================  =========================================================================================

The names are loaded on first use (PEP 562), each with only the modules it needs: checking the visit windows when
the workflow starts imports no pandera or jsonschema.

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
  label, synonyms, optionally ``signed``: values that can be negative; ``resources/units.csv``: accepted unit spellings per analyte with the factor to the
  canonical unit). Names and units are matched case-insensitively, ignoring spaces; ``µ``/``μ`` count as ``u``
  and ``10*9`` or ``x10^9`` as ``10^9``.
"""

from __future__ import annotations

import lazy_loader

_EXPORTS: dict[str, tuple[str, ...]] = {
    "_columns": (
        "AE_COLUMNS",
        "DERIVED_SUBJECT_COLUMNS",
        "DROPPED_COLUMNS",
        "LAB_COLUMNS",
        "SCAN_ID_COLUMNS",
        "SHEET_SUBJECT_COLUMNS",
        "SUBJECT_COLUMNS",
    ),
    "_sheets": ("sheet_schema",),
    "_catalog": ("LabCatalog", "load_catalog"),
    "_labs": ("parse_value", "read_labs", "wide_to_long"),
    "_subjects": ("check_arms", "read_subjects", "subject_table"),
    "_scans": ("SCAN_SHEET_COLUMNS", "read_scans"),
    "_adverse_events": ("read_adverse_events",),
    "_visits": ("assign_visits", "visit_windows"),
    "_joins": ("count_scans", "lab_coverage", "nearest_labs", "scan_table", "scan_tables"),
    "_dictionary": ("data_dictionary",),
}
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs=_EXPORTS)
