"""Tests for lungtrial.imaging._change_table: one row per pair from the pairs' files, visits from study days, no
number kept for a pair not compared."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungtrial.imaging import change
from lungtrial.imaging._change_table import TABLE_CLASSES, change_table


def volumes(scale: float, status: str = "ok") -> pd.DataFrame:
    rows = []
    for region, share in (("whole_lung", 1.0), ("right_upper", 0.4), ("left_lower", 0.6)):
        row = {"region": region, "lung_volume_ml": 4000.0 * share, "not_compared_ml": 1.0 * share,
               "resolved_fraction": 50.0, "status": status, "reason": ""}
        for i, name in enumerate(TABLE_CLASSES):
            row[f"{name}_ml"] = scale * (i + 1) * share
            row[f"pct_{name}"] = 100 * scale * (i + 1) * share / 4000.0
        rows.append(row)
    return pd.DataFrame(rows)


def pair(scan, subject, day, status="ok"):
    info = {"scan_id": scan, "subject_id": subject, "study_day": day, "scan_date": None}
    qc = {"baseline": f"{subject}-D0", "status": status, "reason": "" if status == "ok" else "Dice 0.5 < 0.8",
          "qc": {"dice": 0.95, "jacobian_min": 0.6, "jacobian_max": 1.4, "seconds": 12.3}}
    return info, qc, volumes(2.0 if status == "ok" else 3.0, status)


VISITS = {"day28": [24, 35], "day7": [5, 10]}


def test_one_row_per_pair_sorted_with_visits_and_arms():
    pairs = [pair("B-D28", "B", 28.0), pair("A-D30", "A", 30.5), pair("A-D7", "A", 7.0), pair("A-D40", "A", 40.0)]
    table, regions = change_table(pairs, arms={"A": "drug", "B": "placebo"}, visits=VISITS)
    assert table["followup_scan"].tolist() == ["A-D7", "A-D30", "A-D40", "B-D28"]
    assert table["visit"].tolist() == ["day7", "day28", "", "day28"]  # 30.5 is day 30; day 40 in no window
    assert table["arm"].tolist() == ["drug"] * 3 + ["placebo"]
    assert table["baseline_scan"].tolist() == ["A-D0"] * 3 + ["B-D0"]
    first = table.iloc[0]
    assert first["baseline_lung_ml"] == 4000.0 and first["resolved_ml"] == 2.0 and first["regressed_ml"] == 10.0
    assert first["new_lesion_ml"] == first["new_ml"] == 6.0 and first["dice"] == 0.95
    assert "seconds" not in table.columns  # the same pairs give the same table on any machine
    assert len(regions) == 2 * len(pairs) and set(regions["region"]) == {"right_upper", "left_lower"}
    assert np.isclose(regions.loc[regions["followup_scan"] == "A-D7", "new_ml"].sum(), first["new_ml"])


def test_a_pair_not_compared_keeps_no_number():
    table, regions = change_table([pair("A-D7", "A", 7.0), pair("B-D7", "B", 7.0, status="failed")])
    failed = table.set_index("followup_scan").loc["B-D7"]
    assert failed["status"] == "failed" and failed["reason"] == "Dice 0.5 < 0.8"
    numbers = [c for c in table.columns if c.endswith("_ml") or c.startswith("pct_")] + ["resolved_fraction"]
    assert failed[numbers].isna().all() and table.set_index("followup_scan").loc["A-D7", numbers].notna().all()
    assert failed["arm"] == "" and failed["visit"] == ""  # no arms, no visits given
    assert (regions.loc[regions["followup_scan"] == "B-D7", "status"] == "failed").all()


def test_no_pairs_and_the_facade():
    table, regions = change_table([])
    assert table.empty and regions.empty
    assert change.change_table is change_table and change.TABLE_CLASSES == TABLE_CLASSES
