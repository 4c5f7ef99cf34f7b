"""Workflow tests: run snakemake end to end on a reduced demo trial and on a trial given by sheets.

These run the real workflow (a few minutes on 2 cores); they share one run per module through fixtures.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_setup import REPO, run_snakemake, sheets_trial

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with that folder's config.yaml; return the finished process."""
    proc = run_snakemake(workdir, *args)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Jobs per rule from the 'Job stats' table that a dry run prints."""
    counts: dict[str, int] = {}
    in_table = False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            elif m is None and line.strip() and not line.startswith("-"):
                in_table = False
    return counts


def all_text_files(*roots: Path):
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                yield path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """The reduced demo (.test/config) run end to end, with its report."""
    workdir = tmp_path_factory.mktemp("demo")
    shutil.copy(REPO / ".test" / "config" / "config.yaml", workdir / "config.yaml")
    snakemake(workdir, "--cores", "2")
    snakemake(workdir, "--cores", "2", "--report", "results/report.html")
    return workdir


def test_demo_outputs_present(demo_run):
    config = yaml.safe_load((demo_run / "config.yaml").read_text())
    n_scans = 2 * config["demo_options"]["n_per_arm"] * len(config["demo_options"]["timepoints"])
    metrics = pd.read_csv(demo_run / "results/imaging/metrics.csv")
    assert len(metrics) == n_scans
    assert (metrics["status"] == "ok").all(), metrics[["scan_id", "status", "exclusion_reason"]]
    assert {"soft_tissue_density_ml", "pct_soft_tissue_density"} <= set(metrics.columns)  # imaging.classes
    for scan in metrics["scan_id"]:
        folder = demo_run / "results/scans" / scan
        for name in ("series.json", "metrics.csv", "regions.csv", "qc.png", "masks/lungs.nii.gz", "masks/opacity.nii.gz"):
            assert (folder / name).stat().st_size > 0, folder / name
    report = (demo_run / "results/report.html").read_text(errors="replace")
    assert len(report) > 100_000
    for png in (demo_run / "results").rglob("plots/*.png"):
        assert png.name in report, f"{png.name} missing from the report"


def test_demo_measurements_close_to_truth(demo_run):
    metrics = pd.read_csv(demo_run / "results/imaging/metrics.csv").set_index("scan_id")
    for truth_file in (demo_run / "results/demo_trial/truth").glob("*.json"):
        truth = json.loads(truth_file.read_text())
        row = metrics.loc[truth_file.stem]
        assert row["lung_volume_ml"] == pytest.approx(truth["lung_volume_ml"], rel=0.05), truth_file.stem
        assert abs(row["pct_opacity"] - truth["pct_opacity"]) < 3.0, truth_file.stem


def test_no_identifier_leaves_the_input(demo_run):
    planted: set[str] = set()
    for truth_file in (demo_run / "results/demo_trial/truth").glob("*.json"):
        planted.update(s for s in json.loads(truth_file.read_text())["planted_identifiers"] if len(s) >= 4)
    assert planted
    demo_input = demo_run / "results/demo_trial"
    leaks = []
    for path in all_text_files(demo_run / "results", demo_run / "logs"):
        if demo_input in path.parents:
            continue
        data = path.read_bytes()
        leaks += [(path.relative_to(demo_run), s) for s in planted if s.encode() in data]
    assert not leaks


def test_nothing_to_do_after_complete_run(demo_run):
    proc = snakemake(demo_run, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _remove_middle_slice(folder: Path) -> None:
    """Delete one slice from the middle of the folder's largest series: a scan with a missing slice."""
    import pydicom

    series: dict[str, list[tuple[float, Path]]] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            if "ImagePositionPatient" in ds:
                series.setdefault(ds.SeriesInstanceUID, []).append((float(ds.ImagePositionPatient[2]), path))
    slices = sorted(max(series.values(), key=len))
    slices[len(slices) // 2][1].unlink()


@pytest.fixture(scope="module")
def sheet_trial(tmp_path_factory) -> Path:
    """A trial given by sheets (demo: false) whose last scan is held back, run to completion."""
    workdir = sheets_trial(
        tmp_path_factory.mktemp("sheets"), n_per_arm=2, timepoints=(0, 7, 28), scans_sheet="trial/scans_first.csv"
    )
    scans = pd.read_csv(workdir / "trial/scans.csv", dtype=str)
    scans.iloc[:-1].to_csv(workdir / "trial/scans_first.csv", index=False)
    _remove_middle_slice(workdir / "trial" / scans["dicom_dir"].iloc[0])
    snakemake(workdir, "--cores", "2")
    return workdir


def test_bad_scan_is_excluded_and_the_others_measured(sheet_trial):
    scans = pd.read_csv(sheet_trial / "trial/scans_first.csv", dtype=str)
    qc = pd.read_csv(sheet_trial / "results/imaging/qc.csv").set_index("scan_id")
    bad = scans["scan_id"].iloc[0]
    assert qc.loc[bad, "status"] == "excluded"
    assert "missing" in qc.loc[bad, "exclusion_reason"].lower()
    assert (qc.drop(index=bad)["status"] == "ok").all()
    table = pd.read_csv(sheet_trial / "results/tables/scans.csv").set_index("scan_id")
    assert table.loc[bad, "status"] == "excluded"


def test_adding_a_timepoint_reruns_only_that_scan(sheet_trial):
    config = yaml.safe_load((sheet_trial / "config.yaml").read_text())
    config["sheets"]["scans"] = "trial/scans.csv"
    (sheet_trial / "config.yaml").write_text(yaml.safe_dump(config))
    new_scan = pd.read_csv(sheet_trial / "trial/scans.csv", dtype=str)["scan_id"].iloc[-1]

    proc = snakemake(sheet_trial, "-n")
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    assert counts.get("quantify_scan") == 1 and "ingest_scan" not in counts, counts
    assert "clinical_tables" not in counts, counts
    assert all(n == 1 for n in counts.values()), counts
    assert set(re.findall(r"scan=([A-Za-z0-9._-]+)", out)) == {new_scan}
    snakemake(sheet_trial, "--cores", "2")
    assert (sheet_trial / "results/scans" / new_scan / "metrics.csv").exists()
    proc = snakemake(sheet_trial, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _sheet_config(workdir: Path, subjects: str, scans: str) -> None:
    (workdir / "subjects.csv").write_text(subjects)
    (workdir / "scans.csv").write_text(scans)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["demo"] = False
    config["sheets"] = {"subjects": "subjects.csv", "scans": "scans.csv", "labs": [], "adverse_events": ""}
    config["analysis"] = {}  # a plan with no outcomes: the sheets need no outcome columns
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


SUBJECTS = "subject_id,arm,admission_date,day0_date,discharge_date\nS1,A,2020-01-01,2020-01-02,2020-01-20\n"


@pytest.mark.parametrize(
    "subjects, scans, expected",
    [
        (SUBJECTS, "scan_id,subject_id,scan_date,dicom_dir\nX1,S1,2020/01/05,d\n", r"scans\.csv.*row 2.*2020/01/05"),
        (SUBJECTS, "scan_id,subject_id,scan_date,dicom_dir\nX1,S9,2020-01-05,d\n", r"scans\.csv.*S9"),
        (SUBJECTS, "scan_id,subject_id,scan_date,dicom_dir\nX1,S1,2020-01-05,d\nX1,S1,2020-01-09,e\n", r"scan_id 'X1' \(expected a value not used in another row\)"),
        (SUBJECTS.replace("2020-01-02", "02.01.2020"), "scan_id,subject_id,scan_date,dicom_dir\n", r"subjects\.csv.*row 2.*02\.01\.2020"),
    ],
)
def test_bad_sheet_is_a_clear_error(tmp_path, subjects, scans, expected):
    _sheet_config(tmp_path, subjects, scans)
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert re.search(expected, proc.stdout + proc.stderr, re.DOTALL), proc.stderr[-3000:]


def test_no_demo_without_sheets_is_a_clear_error(tmp_path):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["demo"] = False
    config.pop("sheets", None)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error validating config file" in out and "'subjects' is a required property" in out, out[-3000:]
    assert "KeyError" not in out


def test_rule_files_need_no_include_order(tmp_path):
    """Every parameter the rules share is defined in common.smk: the stage files included in the reverse order
    still give a workflow that plans the reduced demo."""
    text = (REPO / "Snakefile").read_text()
    includes = re.findall(r'^include: "(workflow/rules/\w+\.smk)"\n', text, re.MULTILINE)
    assert includes[0] == "workflow/rules/common.smk" and len(includes) > 3
    stages = [includes[0], *reversed(includes[1:])]
    text = re.sub(r'^include: ".*"\n', "", text, flags=re.MULTILINE)
    text = text.replace("rule all:", "".join(f'include: "{REPO / f}"\n' for f in stages) + "\n\nrule all:", 1)
    # the config file, the report's front page and the library: paths beside the repository's Snakefile
    text = re.sub(r'^(configfile|report): "(.*)"', rf'\1: "{REPO}/\2"', text, flags=re.MULTILINE)
    text = text.replace('os.path.join(workflow.basedir, "src")', repr(str(REPO / "src")))
    (tmp_path / "Snakefile").write_text(text)
    (tmp_path / "resources").symlink_to(REPO / "resources")
    shutil.copy(REPO / ".test" / "config" / "config.yaml", tmp_path / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(tmp_path / "Snakefile"), "-n", "--quiet"]
    cmd += ["--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_cli_writes_what_the_rule_writes(demo_run, tmp_path):
    """`lungtrial quantify` on a demo scan's folder, with the workflow's series options and HU classes, writes the
    same series.json, masks and tables as the scan's rule."""
    import nibabel as nib

    from lungtrial.cli import main

    scan = "P01-D07"
    rule_out = demo_run / "results/scans" / scan
    folder = next(p for p in (demo_run / "results/demo_trial").rglob("*") if p.is_dir() and p.name == scan)
    options = ["--scan-id", scan, "--min-slices", "20", "--max-slice-thickness", "5", "--prefer", "thinnest"]
    options += ["--class", "soft_tissue_density:-100:100"]  # the .test config's imaging.classes
    assert main(["quantify", str(folder), "--out", str(tmp_path), *options]) == 0
    assert (tmp_path / "series.json").read_text() == (rule_out / "series.json").read_text()
    for mask in ("lungs", "opacity"):
        cli, rule = (nib.load(d / "masks" / f"{mask}.nii.gz") for d in (tmp_path, rule_out))
        assert (cli.get_fdata() == rule.get_fdata()).all(), mask
        assert (cli.affine == rule.affine).all(), mask
    for table in ("metrics.csv", "regions.csv"):
        assert (tmp_path / table).read_bytes() == (rule_out / table).read_bytes(), table
