"""Joins of imaging and labs: the nearest lab value per scan, the ``scans`` table, scan counts, lab coverage, and the
tables of the clinical stage's ``clinical_scans`` rule (:func:`scan_tables`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lungtrial.clinical._catalog import LabCatalog
from lungtrial.clinical._columns import SCAN_ID_COLUMNS
from lungtrial.clinical._dates import _iso_dates
from lungtrial.clinical._dictionary import data_dictionary
from lungtrial.clinical._visits import assign_visits, visit_windows
from lungtrial.errors import InputError


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



def scan_tables(
    metrics: pd.DataFrame,
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    catalog: LabCatalog,
    visits: Mapping[str, Sequence[float]],
    window_days: float,
) -> dict[str, pd.DataFrame]:
    """The tables the imaging metrics give the clinical stage (the workflow's ``clinical_scans``).

    Parameters
    ----------
    metrics, subjects, labs, visits, window_days
        As for :func:`scan_table`.
    catalog : LabCatalog
        The lab catalogue: the analytes the labs hold get columns in its order; the data dictionary's labels and
        units.

    Returns
    -------
    dict of DataFrame
        ``scans`` (:func:`scan_table`), ``subjects`` (with their scan counts, :func:`count_scans`) and
        ``dictionary`` (:func:`lungtrial.clinical.data_dictionary` of the clinical tables with this scans table).
    """
    measured = set(labs["analyte"])
    analytes = [slug for slug in catalog.labels if slug in measured]
    scans = scan_table(metrics, subjects, labs, visits, window_days, analytes)
    return {
        "scans": scans,
        "subjects": count_scans(subjects, scans),
        "dictionary": data_dictionary(catalog, scans),
    }

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
