"""The data dictionary of the clinical stage's tables."""

from __future__ import annotations

import pandas as pd

from lungtrial.clinical._catalog import LabCatalog
from lungtrial.clinical._columns import SCAN_ID_COLUMNS

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
    if column == "n_lesions":
        from lungtrial.imaging.metrics import MIN_LESION_ML

        meaning = "lesions: connected regions of ground glass or consolidation (26-connectivity)"
        return f"{meaning} of at least {MIN_LESION_ML:g} mL (with a lesion mask: every component)", "count"
    if column == "largest_lesion_ml":
        return "volume of the largest lesion (connected ground glass or consolidation); 0 without lesions", "mL"
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
