"""One scan: choose and validate the CT series, segment the lungs and measure opacity; series.json, metrics,
regions, masks and the QC picture."""

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from lungtrial.quantify import quantify_scan
from lungtrial.wfutil import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])
info = snakemake.params.info
scan = info["scan_id"]
out = snakemake.output
title = f"{info['subject_id']}  day {info['study_day']}  ({scan})"
lesion_mask = snakemake.input.lesion_mask[0] if snakemake.input.lesion_mask else None

with tempfile.TemporaryDirectory(dir=Path(out.metrics).parent, prefix=".quantify.") as tmp:
    result = quantify_scan(
        snakemake.input.dicom,
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
    tmp = Path(tmp)
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
    masks = Path(out.masks)
    staging = tmp / "masks"
    staging.mkdir()
    for nii in tmp.glob("*.nii.gz"):
        shutil.move(nii, staging / nii.name)
    with atomic_path(out.qc) as t:
        shutil.move(tmp / "qc.png", t)
    shutil.move(staging, masks)
    shutil.move(tmp / "series.json", out.series)

log.info("scan %s: %s; timings %s", scan, result.get("status"), result.get("timings"))
