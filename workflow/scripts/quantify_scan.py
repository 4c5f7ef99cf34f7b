"""Segment the lungs of one scan and measure opacity: metrics, regions, masks and the QC picture."""

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from lungtrial.quantify import quantify_scan
from lungtrial.wfutil import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])
info = snakemake.params.info
out = snakemake.output
series = json.loads(Path(snakemake.input.series).read_text())
title = f"{info['subject_id']}  day {info['study_day']}  ({info['scan_id']})"
lesion_mask = snakemake.input.lesion_mask[0] if snakemake.input.lesion_mask else None

with tempfile.TemporaryDirectory(dir=Path(out.metrics).parent, prefix=".quantify.") as tmp:
    result = quantify_scan(
        snakemake.input.dicom,
        info["scan_id"],
        tmp,
        series=series,
        preset=snakemake.params.preset,
        classes=snakemake.params.classes,
        strict=snakemake.params.strict,
        lesion_mask=lesion_mask,
        title=title,
    )
    tmp = Path(tmp)
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

log.info("scan %s: %s; timings %s", info["scan_id"], result.get("status"), result.get("timings"))
