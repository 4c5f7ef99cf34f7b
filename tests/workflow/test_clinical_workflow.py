"""The clinical rules (workflow/rules/clinical.smk) run by snakemake on small sheets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clinical_sheets import RESOURCES, labs_file, write


@pytest.mark.workflow
def test_rules_build_tables_and_only_the_join_reruns_for_a_new_scan(tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    write(
        tmp_path / "Snakefile",
        f"""
configfile: "config.yaml"
include: "{repo}/workflow/rules/common.smk"
include: "{repo}/workflow/rules/clinical.smk"
rule all:
    input: clinical_targets()
""",
    )
    write(
        tmp_path / "config.yaml",
        f"""
demo: false
sheets: {{subjects: subjects.csv, scans: scans.csv, labs: [labs.csv], adverse_events: ae.csv}}
clinical:
  units: {RESOURCES / "units.csv"}
  analytes: {RESOURCES / "analytes.csv"}
  on_unknown: error
  lab_window_days: 2
  visits: {{baseline: [-3, 1], day7: [5, 10]}}
imaging: {{series: {{}}, lesion_masks: {{}}}}
stats: {{reference_arm: armA, treatment_arm: armB}}
""",
    )
    write(
        tmp_path / "subjects.csv",
        "subject_id,arm,admission_date,day0_date,discharge_date\nP1,armA,2020-02-01,2020-02-02,2020-02-20\n"
        "P2,armB,2020-02-01,2020-02-02,",
    )
    write(tmp_path / "scans.csv", "scan_id,subject_id,scan_date,dicom_dir\nP1-a,P1,2020-02-02,x")
    labs_file(tmp_path, "P1,2020-02-02 07:00,CRP,<0.5,mg/dL\nP1,2020-02-09 07:00,CRP,12,mg/L")
    write(tmp_path / "ae.csv", "subject_id,day,term,grade,related_to_infusion\nP1,0,fever,1,true")
    metrics = tmp_path / "results" / "imaging" / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    write(metrics, "scan_id,subject_id,scan_date,status,exclusion_reason,pct_opacity\nP1-a,P1,2020-02-02,ok,,20")

    def snakemake(*args):
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True)
        return done.stdout + done.stderr

    snakemake()
    tables = tmp_path / "results" / "tables"
    scans = pd.read_parquet(tables / "scans.parquet")
    assert scans[["visit", "crp", "crp_censored", "crp_gap_days"]].values.tolist() == [["baseline", 5.0, "<", 0.0]]
    assert pd.read_csv(tables / "subjects.csv")["n_scans"].tolist() == [1, 0]
    assert (tables / "data_dictionary.csv").exists() and (tables / "adverse_events.parquet").exists()

    with metrics.open("a") as f:
        f.write("P1-b,P1,2020-02-10,ok,,10\n")
    plan = snakemake("--dry-run").split("Job stats:")[1]
    assert "clinical_scans" in plan and "clinical_tables" not in plan
    snakemake()
    assert pd.read_csv(tables / "scans.csv")["crp_gap_days"].tolist() == [0.0, -1.0]
