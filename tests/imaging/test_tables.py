"""lungtrial.imaging.tables: the all-scans tables, the scans sheet's columns joined after ``scan_id``, numbers read
back as written, excluded scans, the QC table and the serial prior's columns; and the workflow's job that writes
them."""

from __future__ import annotations

import json
import runpy
import warnings
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from lungtrial.imaging.tables import QC_COLUMNS, SHEET_COLUMNS, imaging_tables, with_sheet_columns

REPO = Path(__file__).resolve().parents[2]
SCANS = {  # the scans sheet's facts of each scan, in table order
    "S1-D0": {"subject_id": "S1", "study_day": 0, "scan_date": "2020-02-02"},
    "S1-D7": {"subject_id": "S1", "study_day": 7, "scan_date": "2020-02-09"},
}
LUNG_ML = "3184.8084366072717"  # pandas' default CSV parser reads this one unit in the last place off


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def per_scan_files(tmp_path: Path) -> dict[str, list[Path]]:
    """A measured scan (S1-D0) and an excluded one (S1-D7) as quantify_scan writes them; the measured scan's
    metrics carry a stale ``study_day`` (the sheet's value must win)."""
    metrics = [
        f"scan_id,status,exclusion_reason,study_day,lung_volume_ml\nS1-D0,ok,,99,{LUNG_ML}\n",
        "scan_id,status,exclusion_reason,lung_volume_ml\nS1-D7,excluded,no CT series,\n",
    ]
    regions = ["scan_id,region,lung_volume_ml\nS1-D0,right_upper,700.25\nS1-D0,left_upper,650.5\n",
               "scan_id,region,lung_volume_ml\n"]
    series = [
        {"reason": "thinnest series", "geometry": {"shape": [80, 64, 64], "spacing": [2.5, 0.703125, 0.703125]},
         "warnings": ["right lung reaches the image edge", "no airway found"]},
        {"status": "excluded", "reasons": ["no CT series"]},
    ]
    return {
        "metrics": [write(tmp_path / s / "metrics.csv", t) for s, t in zip(SCANS, metrics, strict=True)],
        "regions": [write(tmp_path / s / "regions.csv", t) for s, t in zip(SCANS, regions, strict=True)],
        "series": [write(tmp_path / s / "series.json", json.dumps(c)) for s, c in zip(SCANS, series, strict=True)],
    }


def test_sheet_columns_follow_scan_id_and_numbers_read_back_as_written(tmp_path):
    files = per_scan_files(tmp_path)
    tables = imaging_tables(SCANS, files["metrics"], files["regions"], files["series"])
    metrics = tables.metrics
    assert list(metrics.columns) == ["scan_id", *SHEET_COLUMNS, "status", "exclusion_reason", "lung_volume_ml"]
    assert metrics["scan_id"].tolist() == ["S1-D0", "S1-D7"]
    assert metrics["study_day"].tolist() == [0, 7]  # the sheet's day, not the one in the per-scan file
    assert metrics["scan_date"].tolist() == ["2020-02-02", "2020-02-09"]
    assert metrics.loc[0, "lung_volume_ml"] == float(LUNG_ML)  # the very float written
    assert pd.isna(metrics.loc[1, "lung_volume_ml"])
    # an excluded scan's header-only regions add no rows and leave the numbers numeric
    regions = tables.regions
    assert list(regions.columns) == ["scan_id", *SHEET_COLUMNS, "region", "lung_volume_ml"]
    assert regions["region"].tolist() == ["right_upper", "left_upper"] and (regions["subject_id"] == "S1").all()
    assert regions["lung_volume_ml"].dtype == float


def test_qc_table_says_status_reason_series_choice_geometry_and_warnings(tmp_path):
    files = per_scan_files(tmp_path)
    qc = imaging_tables(SCANS, files["metrics"], files["regions"], files["series"]).qc
    assert tuple(qc.columns) == QC_COLUMNS
    measured, excluded = qc.to_dict("records")
    assert measured == {
        "scan_id": "S1-D0", "subject_id": "S1", "study_day": 0, "status": "ok", "exclusion_reason": "",
        "series_choice": "thinnest series", "n_slices": 80, "spacing_mm": "2.50 x 0.70 x 0.70",
        "warnings": "right lung reaches the image edge; no airway found",
    }
    assert excluded["status"] == "excluded" and excluded["exclusion_reason"] == "no CT series"
    assert excluded["series_choice"] == "" and excluded["spacing_mm"] == "" and excluded["warnings"] == ""
    assert pd.isna(excluded["n_slices"])


def test_serial_priors_add_which_scan_was_the_prior_and_whether_it_was_used(tmp_path):
    files = per_scan_files(tmp_path)
    priors = [
        write(tmp_path / "S1-D0/serial/prior.json", json.dumps({"reference": None, "used": False,
                                                                  "reason": "the reference itself"})),
        write(tmp_path / "S1-D7/serial/prior.json", json.dumps({"reference": "S1-D0", "used": True,
                                                                  "added_ml": 12.5})),
    ]
    qc = imaging_tables(SCANS, files["metrics"], files["regions"], files["series"], priors).qc
    assert list(qc.columns) == [*QC_COLUMNS, "prior_reference", "prior_used", "prior_note", "prior_added_ml"]
    assert qc["prior_reference"].tolist() == ["", "S1-D0"]
    assert qc["prior_used"].tolist() == [False, True]
    assert qc["prior_note"].tolist() == ["the reference itself", ""]
    assert pd.isna(qc.loc[0, "prior_added_ml"]) and qc.loc[1, "prior_added_ml"] == 12.5
    without = imaging_tables(SCANS, files["metrics"], files["regions"], files["series"]).qc
    assert tuple(without.columns) == QC_COLUMNS


def test_a_file_missing_for_a_scan_is_an_error(tmp_path):
    files = per_scan_files(tmp_path)
    with pytest.raises(ValueError, match="2 scans but 1 metrics, 2 regions and 2 series files"):
        imaging_tables(SCANS, files["metrics"][:1], files["regions"], files["series"])


def test_with_sheet_columns_replaces_those_already_there_and_leaves_the_input_alone():
    table = pd.DataFrame({"scan_id": ["S1-D7"], "study_day": [99], "lung_volume_ml": [4000.5]})
    got = with_sheet_columns(table, {"subject_id": "S1", "study_day": 7, "scan_date": "2020-02-09", "arm": "x"})
    assert got.to_dict("records") == [
        {"scan_id": "S1-D7", "subject_id": "S1", "study_day": 7, "scan_date": "2020-02-09", "lung_volume_ml": 4000.5}
    ]
    assert list(table.columns) == ["scan_id", "study_day", "lung_volume_ml"] and table.loc[0, "study_day"] == 99


def test_imaging_tables_with_an_excluded_scan_warns_nothing(tmp_path):
    metrics = ["scan_id,status,exclusion_reason,lung_volume_ml\nA,ok,,4000.5\n",
               "scan_id,status,exclusion_reason\nB,excluded,no CT series\n"]
    scans = {  # the scans sheet's facts, joined by the job (params)
        "A": {"subject_id": "S1", "study_day": 0, "scan_date": "2020-02-01"},
        "B": {"subject_id": "S1", "study_day": 7, "scan_date": "2020-02-08"},
    }
    regions = ["scan_id,region,lung_volume_ml\nA,right_upper,700.0\n", "scan_id,region,lung_volume_ml\n"]
    series = ['{"reason": "thinnest", "geometry": {"shape": [80, 64, 64], "spacing": [2, 1, 1]}}', '{"geometry": {}}']
    files = {}
    for kind, texts, ext in (("metrics", metrics, "csv"), ("regions", regions, "csv"), ("series", series, "json")):
        files[kind] = [str(write(tmp_path / f"{kind}{i}.{ext}", t)) for i, t in enumerate(texts)]
    out = {k: str(tmp_path / "out" / f"{k}.csv") for k in ("metrics", "regions", "qc")}
    fake = SimpleNamespace(
        input=SimpleNamespace(**files), output=SimpleNamespace(**out), log=[str(tmp_path / "it.log")],
        params=SimpleNamespace(scans=scans),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runpy.run_path(str(REPO / "workflow/scripts/imaging_tables.py"), init_globals={"snakemake": fake})
    qc = pd.read_csv(out["qc"])
    assert qc["status"].tolist() == ["ok", "excluded"]
    assert pd.read_csv(out["regions"])["scan_id"].tolist() == ["A"]
