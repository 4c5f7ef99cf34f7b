"""All scans in one table each: metrics, regions and the QC summary, joined with the scans sheet.

The per-scan outputs (:func:`lungtrial.imaging.quantify.quantify_scan`) name a scan only by its ID: the subject,
study day and date come from the scans sheet and are joined here, so that a change of a subject's day 0 or a
scan's date changes these tables and leaves every measurement alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: Columns of the scans sheet joined into the metrics and regions tables, after ``scan_id``, in this order.
SHEET_COLUMNS = ("subject_id", "study_day", "scan_date")
#: Columns of the QC table.
QC_COLUMNS = (
    "scan_id",
    "subject_id",
    "study_day",
    "status",
    "exclusion_reason",
    "series_choice",
    "n_slices",
    "spacing_mm",
    "warnings",
)


@dataclass(frozen=True)
class ImagingTables:
    """The all-scans tables (:func:`imaging_tables`).

    Attributes
    ----------
    metrics : one row per scan: ``scan_id, subject_id, study_day, scan_date`` and the scan's ``metrics.csv``.
    regions : one row per measured scan and lung region, the same key columns first.
    qc : one row per scan (:data:`QC_COLUMNS`): status, why excluded, the series choice, slices, voxel spacing
        (mm) and the QC warnings joined by ``"; "``.
    """

    metrics: pd.DataFrame
    regions: pd.DataFrame
    qc: pd.DataFrame


def with_sheet_columns(table: pd.DataFrame, facts: Mapping) -> pd.DataFrame:
    """``table`` (one scan's rows) with :data:`SHEET_COLUMNS` from ``facts`` (that scan's scans-sheet row: at least
    ``subject_id``, ``study_day`` and ``scan_date``) inserted after its first column, ``scan_id``; a column of that
    name already there is replaced."""
    table = table.drop(columns=[c for c in SHEET_COLUMNS if c in table.columns])
    for key in reversed(SHEET_COLUMNS):
        table.insert(1, key, facts[key])
    return table


def _read(path: str | os.PathLike) -> pd.DataFrame:
    """A per-scan table as written: every number parsed back to the very float written (pandas' default parser
    may be one unit in the last place off, which a table written again would carry)."""
    return pd.read_csv(path, float_precision="round_trip")


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table of the per-scan tables; header-only ones (excluded scans' regions) add no rows and no dtypes."""
    rows = [f for f in frames if len(f)]
    return pd.concat(rows, ignore_index=True) if rows else frames[0]


def imaging_tables(
    scans: Mapping[str, Mapping],
    metrics: Sequence[str | os.PathLike],
    regions: Sequence[str | os.PathLike],
    series: Sequence[str | os.PathLike],
    priors: Sequence[str | os.PathLike] | None = None,
) -> ImagingTables:
    """Read every scan's ``metrics.csv``, ``regions.csv`` and ``series.json`` and make the all-scans tables.

    Parameters
    ----------
    scans : ``{scan_id: facts}`` in table order, the facts of each scan's scans-sheet row (``subject_id``,
        ``study_day`` in days from the subject's day 0, ``scan_date`` ``YYYY-MM-DD``).
    metrics, regions, series : the per-scan files, one per scan in the order of ``scans``.
    priors : optional ``prior.json`` of each scan (the serial prior, ``workflow/scripts/serial_scan.py``): the QC
        table then also says which scan was the prior (``prior_reference``), whether it was used (``prior_used``),
        why not (``prior_note``) and how much it added to the scan's own lungs (``prior_added_ml``; empty when not
        used, or when the scan was then excluded).

    Returns
    -------
    ImagingTables

    Raises
    ------
    ValueError
        If the number of files differs from the number of scans.
    """
    facts = list(scans.values())
    if not len(facts) == len(metrics) == len(regions) == len(series):
        raise ValueError(
            f"{len(facts)} scans but {len(metrics)} metrics, {len(regions)} regions and {len(series)} series files"
        )
    metrics_table = _stack([with_sheet_columns(_read(p), f) for p, f in zip(metrics, facts, strict=True)])
    regions_table = _stack([with_sheet_columns(_read(p), f) for p, f in zip(regions, facts, strict=True)])
    rows = []
    for path, measured in zip(series, metrics_table.itertuples(), strict=True):
        content = json.loads(Path(path).read_text())
        geometry = content.get("geometry") or {}
        rows.append(
            {
                "scan_id": measured.scan_id,
                "subject_id": measured.subject_id,
                "study_day": measured.study_day,
                "status": measured.status,
                "exclusion_reason": measured.exclusion_reason if measured.status != "ok" else "",
                "series_choice": content.get("reason", ""),
                "n_slices": (geometry.get("shape") or [None])[0],
                "spacing_mm": " x ".join(f"{v:.2f}" for v in geometry.get("spacing", [])),
                "warnings": "; ".join(content.get("warnings", [])),
            }
        )
    qc = pd.DataFrame(rows, columns=list(QC_COLUMNS))
    if priors is not None:
        found = [json.loads(Path(p).read_text()) for p in priors]
        qc["prior_reference"] = [f.get("reference") or "" for f in found]
        qc["prior_used"] = [bool(f.get("used")) for f in found]
        qc["prior_note"] = [f.get("reason", "") for f in found]
        qc["prior_added_ml"] = [f.get("added_ml") if f.get("used") else None for f in found]
    return ImagingTables(metrics_table, regions_table, qc)
