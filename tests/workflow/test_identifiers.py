"""No patient identifier leaves the input through a path: DICOM files named by the patient's name, birth date and
accession number, folders named by the PatientID, the study's and each image's UID, an exclusion and a warning
that have to name files, and a lesion mask (config imaging.lesion_masks) named like them. After the workflow (imaging targets and the report) and ``lungtrial quantify`` on such
folders, no identifier appears in any file or file name under results/, logs/ or .snakemake/, nor in what the
report embeds (base64).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
import yaml
from workflow_setup import run_snakemake, sheets_trial

from lungtrial.cli import main

NAMED = "DOE_JOHN_19500101_ACC123456"  # a file name made of a name, a birth date and an accession number


def relayout(trial: Path, scans: pd.DataFrame) -> set[str]:
    """Move each scan's files as PACS exports name them and point the scans sheet at the new folders; returns
    every name used (identifiers all).

    First scan: ``dicom/<PatientID>/<StudyInstanceUID>/<SOPInstanceUID>/DOE_JOHN_19500101_ACC123456.dcm``, one
    slice of its main series removed (excluded: "slices missing between file a and file b"). Other scans:
    ``dicom/<PatientID>/<StudyInstanceUID>/<name>_<birth date>_<accession>_<SOPInstanceUID>.dcm`` and a truncated
    copy of one image named DOE_JOHN_19500101_ACC123456.dcm (warned about, as outside the series).
    """
    names = {NAMED}
    folders = []
    for i, (scan_id, rel) in enumerate(zip(scans["scan_id"], scans["dicom_dir"], strict=True)):
        old = trial / rel
        files = sorted(p for p in old.rglob("*") if p.is_file())
        headers = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in files}
        first = next(iter(headers.values()))
        study = trial / "dicom" / str(first.PatientID) / str(first.StudyInstanceUID)
        names |= {str(first.PatientID), str(first.StudyInstanceUID), str(first.PatientName), str(first.AccessionNumber)}
        main_series = max(
            {h.SeriesInstanceUID for h in headers.values()}, key=[h.SeriesInstanceUID for h in headers.values()].count
        )
        stack = sorted(
            (p for p, h in headers.items() if h.SeriesInstanceUID == main_series),
            key=lambda p: float(headers[p].ImagePositionPatient[2]),
        )
        for path, ds in headers.items():
            sop = str(ds.SOPInstanceUID)
            names |= {sop, str(ds.SeriesInstanceUID)}
            if i == 0:
                if path == stack[len(stack) // 2]:
                    continue
                target = study / sop / f"{NAMED}.dcm"
            else:
                patient = str(ds.PatientName).replace("^", "_")
                target = study / f"{patient}_{ds.PatientBirthDate}_{ds.AccessionNumber}_{sop}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        if i > 0:
            data = (study / next(p.name for p in study.iterdir())).read_bytes()
            (study / f"{NAMED}.dcm").write_bytes(data[: len(data) // 3])
        folders.append(study.relative_to(trial).as_posix())
        for path in sorted(old.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        old.rmdir()
    scans.assign(dicom_dir=folders).to_csv(trial / "scans.csv", index=False)
    return names


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, set[str]]:
    def edit(config: dict) -> None:
        config["imaging"]["series"]["min_slices"] = 10

    workdir = sheets_trial(tmp_path_factory.mktemp("identifiers"), n_per_arm=1, timepoints=(0,), edit=edit)
    trial = workdir / "trial"
    planted = set()
    for truth in (trial / "truth").glob("*.json"):
        planted |= set(json.loads(truth.read_text())["planted_identifiers"])
    names = relayout(trial, pd.read_csv(trial / "scans.csv", dtype=str))
    # the measured scan's lesion mask, in a folder and under a name made of identifiers
    measured = pd.read_csv(trial / "scans.csv", dtype=str)["scan_id"].iloc[1]
    mask = trial / "masks" / min(names) / f"{NAMED}_lesions.nii.gz"
    mask.parent.mkdir(parents=True)
    shutil.copy(trial / "truth" / f"{measured}_lesions.nii.gz", mask)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["imaging"]["lesion_masks"] = {measured: mask.relative_to(workdir).as_posix()}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    for extra in (["--cores", "2"], ["--report", "results/report.html"]):
        proc = run_snakemake(workdir, *extra, "results/imaging/qc.csv")
        assert proc.returncode == 0, proc.stderr[-3000:]
        (workdir / "logs" / f"snakemake{len(extra[0])}.txt").write_text(proc.stdout + proc.stderr)  # console too
    identifiers = {s for s in planted | names if len(s) >= 6} | {"DOE_JOHN", "19500101", "ACC123456"}
    return workdir, identifiers


def texts(workdir: Path):
    """(where, bytes) of every file and file name under results/, logs/, .snakemake/ and the CLI's output, and of
    every base64 payload of the report."""
    for root in ("results", "logs", ".snakemake", "cli"):
        for path in (workdir / root).rglob("*"):
            yield f"name {path.relative_to(workdir)}", str(path.relative_to(workdir)).encode()
            if path.is_file():
                yield str(path.relative_to(workdir)), path.read_bytes()
    report = (workdir / "results/report.html").read_text(errors="replace")
    for n, payload in enumerate(re.findall(r"base64,([A-Za-z0-9+/=]{16,})", report)):
        yield f"report payload {n}", base64.b64decode(payload + "=" * (-len(payload) % 4))


@pytest.mark.workflow
def test_no_identifier_in_results_logs_snakemake_state_or_report(run, capsys):
    workdir, identifiers = run
    scans = pd.read_csv(workdir / "trial/scans.csv", dtype=str)
    code = main(["quantify", str(workdir / "trial" / scans["dicom_dir"].iloc[1]), "--out", str(workdir / "cli")])
    (workdir / "cli" / "stderr.txt").write_text(capsys.readouterr().err)
    assert code == 0

    qc = pd.read_csv(workdir / "results/imaging/qc.csv").set_index("scan_id")
    excluded, measured = scans["scan_id"]
    assert qc.loc[excluded, "status"] == "excluded"
    assert re.search(r"missing between file \d+ and file \d+", qc.loc[excluded, "exclusion_reason"])
    assert re.search(r"truncated.*: file \d+; file\(s\) outside the series ignored", qc.loc[measured, "warnings"])
    metrics = pd.read_csv(workdir / "results/imaging/metrics.csv").set_index("scan_id")
    assert metrics.loc[measured, "opacity_source"] == "lesion_mask"  # the handed-over lesion mask was used
    series = json.loads((workdir / "results/scans" / measured / "series.json").read_text())
    assert all(re.fullmatch(r"file \d+", f) for f in series["files"])
    assert (workdir / "results/report.html").stat().st_size > 10_000

    leaks = [(where, s) for where, data in texts(workdir) for s in identifiers if s.encode() in data]
    assert leaks == []


@pytest.mark.workflow
def test_report_of_another_run_differs_only_in_job_times(run):
    """Snakemake's HTML report embeds each job's start and end time from its records in .snakemake/metadata (the
    runtimes and timeline charts, docs/reruns.md); with other times on record, nothing else in it changes."""
    workdir, _ = run
    for record in (workdir / ".snakemake/metadata").iterdir():  # the same jobs, run later and slower
        meta = json.loads(record.read_text())
        meta["starttime"] += 86400.5
        meta["endtime"] += 86402.25
        record.write_text(json.dumps(meta))
    proc = run_snakemake(workdir, "--report", "results/report_later.html", "results/imaging/qc.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = (workdir / "results/report.html").read_bytes().splitlines()
    later = (workdir / "results/report_later.html").read_bytes().splitlines()
    assert len(first) == len(later)
    differ = [a.split(b"=", 1)[0].strip() for a, b in zip(first, later, strict=True) if a != b]
    assert differ == [b"var runtimes_spec", b"var timeline_spec"]
