"""Collect the per-scan metrics, regions and series QC into one table each."""

import json
from pathlib import Path

import pandas as pd

from lungtrial.wfutil import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])


def write(frame, path):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def stack(paths):
    """One table of the per-scan tables; header-only ones (excluded scans' regions) add no rows and no dtypes."""
    frames = [pd.read_csv(p) for p in paths]
    rows = [f for f in frames if len(f)]
    return pd.concat(rows, ignore_index=True) if rows else frames[0]


metrics = stack(snakemake.input.metrics)
regions = stack(snakemake.input.regions)
write(metrics, snakemake.output.metrics)
write(regions, snakemake.output.regions)

rows = []
for path, measured in zip(snakemake.input.series, metrics.itertuples()):
    series = json.loads(Path(path).read_text())
    geometry = series.get("geometry") or {}
    rows.append(
        {
            "scan_id": measured.scan_id,
            "subject_id": measured.subject_id,
            "study_day": measured.study_day,
            "status": measured.status,
            "exclusion_reason": measured.exclusion_reason if measured.status != "ok" else "",
            "series_choice": series.get("reason", ""),
            "n_slices": (geometry.get("shape") or [None])[0],
            "spacing_mm": " x ".join(f"{v:.2f}" for v in geometry.get("spacing", [])),
            "warnings": "; ".join(series.get("warnings", [])),
        }
    )
qc = pd.DataFrame(rows)
write(qc, snakemake.output.qc)
log.info(
    "%d scans: %d measured, %d excluded",
    len(qc),
    (qc["status"] == "ok").sum(),
    (qc["status"] != "ok").sum(),
)
