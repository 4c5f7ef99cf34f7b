"""The serial prior in the workflow (config ``imaging.serial_prior``): one serial_scan job per scan with every scan
of its subject as input, the imaging tables taking its measurement, and one subject's jobs run on the reduced demo:
the least affected scan is the reference, the other scans are measured with its lungs registered onto them."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from workflow_setup import REPO, dry_run, jobs, run_snakemake


@pytest.fixture(scope="module")
def serial_config() -> dict:
    config = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    config["imaging"]["serial_prior"] = True
    return config


def test_serial_jobs_and_their_inputs(tmp_path, serial_config):
    out = jobs(dry_run(tmp_path, serial_config))
    n_scans = 2 * serial_config["demo_options"]["n_per_arm"] * len(serial_config["demo_options"]["timepoints"])
    assert len(out["serial_scan"]) == n_scans
    first = next(line for line in out["serial_scan"] if "P01-D00/metrics.csv" in line)
    for scan in ("P01-D00", "P01-D07", "P01-D28"):  # every scan of the subject, later ones too
        assert f"results/scans/{scan}/metrics.csv" in first and f"results/scans/{scan}/masks" in first
    assert "P02-" not in first
    (tables,) = out["imaging_tables"]
    assert "results/scans/P01-D00/serial/metrics.csv" in tables and "serial/prior.json" in tables
    # the change maps take the masks measured with the prior, as the tables do
    pair = next(line for line in out["change_pair"] if "P01-D07" in line).removeprefix("input:").strip().split(", ")
    assert "results/scans/P01-D00/serial/masks" in pair and "results/scans/P01-D00/masks" not in pair
    # off (the default): no serial job, the tables take the scans' own measurements
    serial_config["imaging"]["serial_prior"] = False
    out = jobs(dry_run(tmp_path / "off", serial_config))
    assert "serial_scan" not in out and "serial/" not in out["imaging_tables"][0]
    assert not any("serial/" in line for line in out["change_pair"])


def test_one_subject_measured_with_its_serial_prior(tmp_path, serial_config):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(serial_config))
    scans = ("P01-D00", "P01-D07", "P01-D28")
    targets = [f"results/scans/{scan}/serial/prior.json" for scan in scans]
    proc = run_snakemake(tmp_path, "--cores", "2", *targets)
    assert proc.returncode == 0, proc.stderr[-4000:]
    own = {s: pd.read_csv(tmp_path / f"results/scans/{s}/metrics.csv").iloc[0] for s in scans}
    reference = min(scans, key=lambda s: (own[s]["pct_opacity"], -scans.index(s)))
    for scan in scans:
        record = json.loads((tmp_path / f"results/scans/{scan}/serial/prior.json").read_text())
        assert record["reference"] == reference
        assert "seconds" not in record  # the same inputs, the same bytes
        serial = pd.read_csv(tmp_path / f"results/scans/{scan}/serial/metrics.csv").iloc[0]
        assert serial["status"] == "ok"
        if scan == reference:
            assert not record["used"] and "reference" in record["reason"]
            assert serial["lung_volume_ml"] == own[scan]["lung_volume_ml"]
            assert record["added_ml"] is None
        else:
            assert record["used"], record
            # the prior only adds to the scan's own lungs, and says how much (outlined in the QC picture)
            assert serial["lung_volume_ml"] >= own[scan]["lung_volume_ml"] - 0.5
            assert abs(serial["lung_volume_ml"] - own[scan]["lung_volume_ml"] - record["added_ml"]) < 1.0
        assert (tmp_path / f"results/scans/{scan}/serial/masks/lungs.nii.gz").exists()
    # a lesion mask (config imaging.lesion_masks) is used with the serial prior too: its voxels are the opacity
    scan = next(s for s in scans if s != reference)
    mask = tmp_path / "lesions.nii.gz"
    shutil.copy(tmp_path / f"results/scans/{scan}/serial/masks/opacity.nii.gz", mask)
    serial_config["imaging"]["lesion_masks"] = {scan: str(mask)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(serial_config))
    proc = run_snakemake(tmp_path, "--cores", "2", f"results/scans/{scan}/serial/prior.json")
    assert proc.returncode == 0, proc.stderr[-4000:]
    with_mask = pd.read_csv(tmp_path / f"results/scans/{scan}/serial/metrics.csv").iloc[0]
    assert with_mask["status"] == "ok"
    assert json.loads((tmp_path / f"results/scans/{scan}/serial/prior.json").read_text())["used"]
    assert with_mask["opacity_source"] == "lesion_mask"
