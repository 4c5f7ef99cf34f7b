"""One scan: choose and validate the CT series, segment the lungs and measure opacity; series.json, metrics,
regions, masks and the QC picture.

The DICOM folder is the rule's input for the demo trial; for a trial given by sheets the workflow hands it over
outside Snakemake (lungtrial.imaging.quantify.scan_folder), so that its path (often named by patient IDs or UIDs) never
enters Snakemake's records, logs or report. A scan that cannot be measured in strict mode, or whose folder is
missing, ends the job with one line in its log.
"""

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from lungtrial.errors import InputError
from lungtrial.imaging.quantify import quantify_scan, scan_folder, scan_workspace
from lungtrial.wfutil import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])
info = snakemake.params.info
scan = info["scan_id"]
out = snakemake.output
title = f"{info['subject_id']}  day {info['study_day']}  ({scan})"
lesion_mask = snakemake.input.lesion_mask[0] if snakemake.input.lesion_mask else None


def dicom_folder() -> Path:
    if snakemake.input.get("dicom"):
        return Path(snakemake.input.dicom)
    folder, sheet, row = scan_folder(scan)
    if not folder.is_dir():
        raise InputError(
            f"{sheet}, row {row}: dicom_dir of scan {scan} (subject {info['subject_id']}) is not an existing folder "
            "(expected the scan's DICOM folder; its path is not shown: folder names may identify the patient)"
        )
    return folder


def measure(folder: Path, tmp: Path) -> dict:
    result = quantify_scan(
        folder,
        scan,
        tmp,
        series_options=snakemake.params.series,
        preset=snakemake.params.preset,
        classes=snakemake.params.classes,
        strict=snakemake.params.strict,
        measure_implausible=snakemake.params.measure_implausible,
        lesion_mask=lesion_mask,
        title=title,
        threads=snakemake.threads,
    )
    series = json.loads((tmp / "series.json").read_text())
    if series["status"] == "ok":
        log.info("scan %s: %s", scan, series.get("reason", "series chosen"))
    for warning in series.get("warnings", []):
        log.warning("scan %s: %s", scan, warning)
    for name, target in (("metrics.csv", out.metrics), ("regions.csv", out.regions)):
        table = pd.read_csv(tmp / name)
        for key in ("scan_date", "study_day", "subject_id"):
            if key in table.columns:
                table = table.drop(columns=key)
            table.insert(1, key, info[key])
        with atomic_path(target) as t:
            table.to_csv(t, index=False)
    staging = tmp / "masks"
    staging.mkdir()
    for nii in tmp.glob("*.nii.gz"):
        shutil.move(nii, staging / nii.name)
    with atomic_path(out.qc) as t:
        shutil.move(tmp / "qc.png", t)
    masks = Path(out.masks)
    if masks.exists():  # placed by a job of an interrupted run that ended after this job was started
        shutil.rmtree(masks)
    staging.rename(masks)
    (tmp / "series.json").replace(out.series)
    return result


try:
    with scan_workspace(Path(out.metrics).parent) as tmp:
        result = measure(dicom_folder(), tmp)
except InputError as exc:  # a bad or missing folder, or a strict-mode exclusion: one line, no traceback
    message = " ".join(str(exc).split())
    log.error("%s", message if message.startswith(f"scan {scan} ") else f"scan {scan}: {message}")
    sys.exit(1)
except OSError as exc:  # the folder changed while it was read: the reason, never the path (it may identify)
    log.error("scan %s: the DICOM folder could not be read (%s); run again", scan, exc.strerror or type(exc).__name__)
    sys.exit(1)

log.info("scan %s: %s; timings %s", scan, result.get("status"), result.get("timings"))
