"""Reruns and resume: a run killed with SIGKILL resumes with the plain command; a scan is re-measured when its DICOM
folder's content changes; a folder that is missing fails that scan alone, with one clear line.

The workflow cases run snakemake on a tiny trial given by sheets (three scans of the tiny demo size, imaging
targets only), at most two runs each; the rest are unit tests of the pieces (a scan job's workspace and lock;
the folder fingerprint is in tests/imaging/dicom/test_fingerprint.py, the stale Snakemake locks in
test_runlock.py). tests/kill_and_resume.py kills the reduced demo at several moments and compares every output
with an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from workflow_setup import run_snakemake as run
from workflow_setup import sheets_trial, snakemake_cmd

from lungtrial.imaging.quantify import scan_workspace

TARGET = "results/imaging/qc.csv"
REFUSALS = re.compile(r"LockException|cannot be locked|IncompleteFilesException|--rerun-incomplete|--unlock")


def measured_scans(output: str) -> set[str]:
    """Scans whose quantify_scan job a snakemake run started."""
    jobs = re.findall(r"rule quantify_scan:\n(?:    .*\n)*?    wildcards: scan=(\S+)", output)
    return set(jobs)


def leftovers(workdir: Path) -> list[str]:
    pattern = re.compile(r"^\.quantify\.|^\..+\.tmp(\.|$)")
    found = [p.name for p in (workdir / "results").rglob("*") if pattern.match(p.name)]
    for state in ("locks", "incomplete"):
        if (workdir / ".snakemake" / state).is_dir():
            found += [p.name for p in (workdir / ".snakemake" / state).rglob("*") if p.is_file()]
    return found


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    """A tiny trial given by sheets: three scans of two subjects, and a config for it."""
    return sheets_trial(tmp_path_factory.mktemp("reruns"), n_per_arm=1, timepoints=(0, 7), scans=3)


@pytest.fixture(scope="module")
def resumed(trial) -> tuple[Path, str]:
    """The trial's run killed (SIGKILL, main process only: its jobs run on, orphaned) while a scan's job is in its
    temporary folder, then resumed with the plain command at once; returns the folder and the resumed run's output."""
    log = trial / "killed_run.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(
            snakemake_cmd(trial, "--cores", "2", TARGET), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if any((trial / "results/scans").glob("*/.quantify.*/*")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before a scan's job was caught at work:\n{log.read_text()[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any((trial / ".snakemake/locks").iterdir())  # what made the next run refuse to start
    done = run(trial, "--cores", "2", TARGET)
    assert done.returncode == 0, done.stderr[-3000:]
    return trial, done.stdout + done.stderr


@pytest.mark.workflow
def test_a_killed_run_resumes_with_the_plain_command(resumed):
    workdir, output = resumed
    assert not REFUSALS.search(output), output[-3000:]
    assert "removed the locks left by an interrupted run" in output
    scans = pd.read_csv(workdir / "trial/scans.csv")["scan_id"]
    qc = pd.read_csv(workdir / TARGET)
    assert sorted(qc["scan_id"]) == sorted(scans) and (qc["status"] == "ok").all()
    for scan in scans:
        folder = workdir / "results/scans" / scan
        assert sorted(p.name for p in folder.iterdir()) == [
            "masks",
            "metrics.csv",
            "qc.png",
            "regions.csv",
            "series.json",
        ]
        assert sorted(p.name for p in (folder / "masks").iterdir() if not p.name.startswith(".snakemake")) == [
            "lungs.nii.gz",
            "opacity.nii.gz",
        ]
    assert leftovers(workdir) == []


@pytest.mark.workflow
def test_folder_changes_rerun_their_scans_and_a_missing_folder_fails_alone(resumed):
    """One run after three changes: a file rewritten in place (same name and size), a measured scan's folder gone,
    a new row whose folder is not there yet. The first is re-measured, the other two fail with one line each, the
    untouched scan is kept, and the all-scans table waits. (Files added or removed: the fingerprint test.)"""
    workdir, _ = resumed
    trial = workdir / "trial"
    scans = pd.read_csv(trial / "scans.csv", dtype=str)
    rewritten, kept, gone = scans["scan_id"]
    folder = dict(zip(scans["scan_id"], scans["dicom_dir"], strict=True))
    victim = sorted((trial / folder[rewritten]).iterdir())[5]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1  # same name, same size, another voxel value
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    shutil.rmtree(trial / folder[gone])
    new = scans.iloc[[0]].assign(scan_id="P01-D28", scan_date="2020-03-05", dicom_dir="dicom/P01/P01-D28")
    pd.concat([scans, new]).to_csv(trial / "scans.csv", index=False)
    table = (workdir / TARGET).read_bytes()

    proc = run(workdir, "--cores", "2", TARGET)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert measured_scans(output) == {rewritten, gone, "P01-D28"}
    for scan, row in ((gone, 4), ("P01-D28", 5)):
        (line,) = [x for x in (workdir / "logs/quantify_scan" / f"{scan}.log").read_text().splitlines() if "ERROR" in x]
        assert f"scan {scan}: trial/scans.csv, row {row}: dicom_dir of scan {scan} (subject" in line
        assert "is not an existing folder (expected the scan's DICOM folder" in line
        assert folder.get(scan, "dicom/P01") not in line and "Traceback" not in output
    for scan in (rewritten, kept):
        assert (workdir / "results/scans" / scan / "metrics.csv").exists()
    assert not (workdir / "results/scans" / gone / "metrics.csv").exists()  # no stale result of a vanished folder
    assert (workdir / TARGET).read_bytes() == table  # not made from an incomplete set of scans
    assert leftovers(workdir) == []


@pytest.mark.workflow
def test_a_changed_day0_reruns_the_tables_not_the_scans(tmp_path):
    """The study day is joined where the per-scan rows are gathered (the imaging tables): a subject's day 0 moved
    by a day reruns no scan's measurement and no registration, and the tables show the new study days."""
    workdir = sheets_trial(tmp_path, n_per_arm=1, timepoints=(0, 7), scans=2)  # one subject's two scans: one pair
    targets = (TARGET, "results/imaging/change.csv")
    first = run(workdir, "--cores", "2", *targets)
    assert first.returncode == 0, first.stderr[-3000:]
    before = pd.read_csv(workdir / TARGET)
    subjects = pd.read_csv(workdir / "trial/subjects.csv", dtype=str, keep_default_na=False)
    moved = before["subject_id"].iloc[0]
    day0 = pd.to_datetime(subjects["day0_date"])
    subjects["day0_date"] = day0.where(subjects["subject_id"] != moved, day0 + pd.Timedelta(days=1)).dt.strftime(
        "%Y-%m-%d"
    )
    subjects.to_csv(workdir / "trial/subjects.csv", index=False)

    again = run(workdir, "--cores", "2", *targets)
    assert again.returncode == 0, again.stderr[-3000:]
    jobs = set(re.findall(r"^(?:local)?rule (\w+):", again.stdout + again.stderr, flags=re.MULTILINE))
    assert jobs == {"imaging_tables", "change_tables"}, jobs  # no quantify_scan, no change_pair
    after = pd.read_csv(workdir / TARGET)
    assert set(before["subject_id"]) == {moved} and list(before["study_day"] - after["study_day"]) == [1, 1]
    metrics = pd.read_csv(workdir / "results/imaging/metrics.csv")
    assert list(metrics["study_day"]) == list(after["study_day"])


def test_workspace_clears_what_an_interrupted_job_left(tmp_path):
    out = tmp_path / "results/scans/S1"
    (out / ".quantify.abcd1234").mkdir(parents=True)
    (out / ".quantify.abcd1234/metrics.csv").write_text("half")
    (out / ".metrics.csv.x1y2.tmp.csv").write_text("half")
    (out / "metrics.csv").write_text("kept until replaced")
    with scan_workspace(out) as tmp:
        assert tmp.parent == out and tmp.name.startswith(".quantify.")
        assert sorted(p.name for p in out.iterdir()) == sorted([".quantify.lock", tmp.name, "metrics.csv"])
        (tmp / "series.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv"]


def test_a_second_job_of_a_scan_waits_for_the_first(tmp_path):
    out = tmp_path / "S1"
    order = []
    entered = threading.Event()

    def first():
        with scan_workspace(out):
            entered.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(10)
    with scan_workspace(out):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    assert list(out.iterdir()) == []
