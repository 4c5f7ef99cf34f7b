"""The change table: one row per pair of a follow-up and its baseline, from the pairs' files (the workflow's
``change_tables`` rule). Imported from :mod:`lungtrial.imaging.change`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

#: Change classes reported per pair in the change table (mL and % of the baseline lung each).
TABLE_CLASSES = ("resolved", "persistent", "new", "progressed", "regressed")


def change_table(
    pairs: Sequence[tuple[Mapping, Mapping, pd.DataFrame]],
    arms: Mapping[str, str] | None = None,
    visits: Mapping[str, Sequence[float]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per pair (the change table) and one row per pair and region, from the pairs' files.

    Parameters
    ----------
    pairs : sequence of (info, qc, volumes)
        ``info``: the follow-up's ``scan_id``, ``subject_id``, ``study_day``, ``scan_date``; ``qc``: the pair's
        ``qc.json`` (:func:`compare_volumes`); ``volumes``: its ``volumes.csv``.
    arms : subject -> arm, optional.
    visits : nominal visits, name -> inclusive study-day window ``[lo, hi]`` (config ``clinical.visits``); a
        follow-up in no window has no visit.

    Returns
    -------
    change : DataFrame
        ``subject_id``, ``arm``, ``baseline_scan``, ``followup_scan``, ``study_day`` (of the follow-up),
        ``visit``, ``baseline_lung_ml``, ``<class>_ml`` and ``pct_<class>`` (% of the baseline lung) for each of
        :data:`TABLE_CLASSES`, ``not_compared_ml``, ``resolved_fraction`` (% of the compared baseline opacity),
        ``new_lesion_ml`` (= ``new_ml``), ``dice``, ``jacobian_min``, ``jacobian_max``, ``status`` and ``reason``
        (no timing: the same pairs give the same table on any machine; the seconds are in each ``qc.json``).
        Volumes are empty for a pair whose status is not ok.
    regions : DataFrame
        The same keys with ``region`` and the region's volumes (``volumes.csv``) for every pair.
    """
    windows = sorted(((str(k), float(v[0]), float(v[1])) for k, v in (visits or {}).items()), key=lambda w: w[1])

    def visit_of(day) -> str:
        if day is None or pd.isna(day):
            return ""
        d = np.floor(float(day))
        return next((name for name, lo, hi in windows if lo <= d <= hi), "")

    rows, region_rows = [], []
    for info, qc, volumes in pairs:
        key = {
            "subject_id": info["subject_id"],
            "arm": (arms or {}).get(info["subject_id"], ""),
            "baseline_scan": qc.get("baseline") or "",
            "followup_scan": info["scan_id"],
            "study_day": info.get("study_day"),
            "visit": visit_of(info.get("study_day")),
        }
        whole = volumes.loc[volumes["region"] == "whole_lung"].iloc[0]
        reg = qc.get("qc") or {}
        row = dict(key, baseline_lung_ml=whole.get("lung_volume_ml"))
        for name in TABLE_CLASSES:
            row[f"{name}_ml"] = whole.get(f"{name}_ml")
            row[f"pct_{name}"] = whole.get(f"pct_{name}")
        row["not_compared_ml"] = whole.get("not_compared_ml")
        row["resolved_fraction"] = whole.get("resolved_fraction")
        row["new_lesion_ml"] = whole.get("new_ml")
        for name in ("dice", "jacobian_min", "jacobian_max"):
            row[name] = reg.get(name, np.nan)
        row["status"] = qc.get("status", whole.get("status"))
        row["reason"] = qc.get("reason", "") or ""
        rows.append(row)
        for _, r in volumes.loc[volumes["region"] != "whole_lung"].iterrows():
            region_rows.append(key | r.drop(labels=["status", "reason"], errors="ignore").to_dict()
                               | {"status": row["status"]})
    change = pd.DataFrame(rows)
    if not change.empty:
        change = change.sort_values(["subject_id", "study_day", "followup_scan"], ignore_index=True)
        if (change["status"] != "ok").any():
            numbers = [c for c in change.columns if c.endswith("_ml") or c.startswith("pct_")] + ["resolved_fraction"]
            change.loc[change["status"] != "ok", numbers] = np.nan  # never a number kept for a pair not compared
    return change, pd.DataFrame(region_rows)
