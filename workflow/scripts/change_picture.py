"""The change picture of one patient (lungtrial.imaging.change.plot_patient_changes)."""

import json
from pathlib import Path

import numpy as np

from lungtrial.imaging.change import plot_patient_changes
from lungtrial.io import write_figure
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
rows = []
for info, preview, qc in zip(snakemake.params.follow_ups, snakemake.input.preview, snakemake.input.qc, strict=True):
    content = json.loads(Path(qc).read_text())
    with np.load(preview) as npz:
        arrays = {k: npz[k] for k in npz.files}
    rows.append(
        {
            "label": f"day {info['study_day']} ({info['scan_id']})\nvs {content.get('baseline') or 'no baseline'}",
            "status": content["status"],
            "reason": content["reason"],
            "preview": arrays,
        }
    )
subject = snakemake.wildcards.subject
fig = plot_patient_changes(rows, f"{subject}: change against the baseline CT, one row per follow-up")
# the figure is laid out to its size: no second, "tight" drawing
write_figure(fig, snakemake.output[0], dpi=150, bbox_inches=None)
log.info("%s: %d follow-ups drawn", subject, len(rows))
