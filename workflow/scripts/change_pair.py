"""One follow-up CT against its subject's baseline CT (the earliest measured of the candidate scans): transforms,
change map, volumes, QC and the picture's slices (lungtrial.imaging.change.compare_scans).

The DICOM folders are the rule's inputs for the demo trial; for a trial given by sheets the workflow hands them
over outside Snakemake (lungtrial.imaging.existing_scan_folder), as for quantify_scan.
"""

import json
import sys
from pathlib import Path

from lungtrial.errors import InputError
from lungtrial.imaging import existing_scan_folder
from lungtrial.imaging.change import choose_baseline, compare_scans
from lungtrial.wfutil import INPUT_ERROR, setup_logging

log = setup_logging(snakemake.log[0])
infos = snakemake.params.scans
follow_up = infos[-1]["scan_id"]


def folder_of(k: int) -> Path:
    """Scan ``k``'s DICOM folder: the rule's input (demo) or the one handed over (checked to exist)."""
    if snakemake.input.get("dicom"):
        return Path(snakemake.input.dicom[k])
    return existing_scan_folder(infos[k]["scan_id"])


series = [json.loads(Path(p).read_text()) for p in snakemake.input.series]
chosen = choose_baseline(series)
try:
    # the two folders compared are resolved now, while the workflow that handed them over is surely running
    folders = {k: folder_of(k) for k in {len(infos) - 1, chosen} if k is not None}
    scans = [
        {"scan_id": info["scan_id"], "series": s, "folder": folders.get(k), "masks": snakemake.input.masks[k]}
        for k, (info, s) in enumerate(zip(infos, series, strict=True))
    ]
    baseline = None if chosen is None else scans[chosen]
    result = compare_scans(
        baseline,
        scans[-1],
        Path(snakemake.output.qc).parent,
        registration=snakemake.params.registration,
        threads=snakemake.threads,
        same_patient=snakemake.params.same_patient,
        preset=snakemake.params.preset,
    )
except InputError as exc:  # a missing folder or an unreadable mask: one line, no traceback
    log.error("pair %s: %s", follow_up, " ".join(str(exc).split()), extra=INPUT_ERROR)
    sys.exit(1)
qc = result["qc"]
log.info(
    "pair %s -> %s: %s%s; Dice %s, Jacobian %s..%s; seconds %s",
    follow_up,
    result["baseline"],
    result["status"],
    f" ({result['reason']})" if result["reason"] else "",
    qc.get("dice"),
    qc.get("jacobian_min"),
    qc.get("jacobian_max"),
    result["seconds"],
)
