"""One scan measured again with its serial prior: the lungs of the subject's least-affected measured scan
(lungtrial.imaging.serial.least_affected), registered onto this scan, bring back consolidation as dense as the wall
that the scan alone cannot tell from it (lungtrial.imaging.serial.reference_prior, quantify_scan(prior=)).

A lesion mask of config imaging.lesion_masks is used as by quantify_scan. Writes the per-scan layout of quantify_scan
into results/scans/<scan>/serial/ and prior.json: the reference, whether the prior was used and why not, the
registration's QC and what the prior added to the scan's own lungs (added_ml, null when not used). The reference itself, a subject's only measured scan and an excluded scan are measured as by
quantify_scan alone (prior.json says why).
"""

import json
import sys
from contextlib import nullcontext
from pathlib import Path

from lungtrial import io
from lungtrial.errors import InputError
from lungtrial.imaging import existing_scan_folder, handed_over_lesion_mask
from lungtrial.imaging.quantify import quantify_scan
from lungtrial.imaging.serial import prior_of_scan
from lungtrial.wfutil import INPUT_ERROR, setup_logging

log = setup_logging(snakemake.log[0])
scan = snakemake.wildcards.scan
params, inp = snakemake.params, snakemake.input
scans = list(params.scans)  # the subject's scans in time order
here = scans.index(scan)


def folder_of(k: int) -> Path:
    return Path(inp.dicom[k]) if inp.get("dicom") else existing_scan_folder(scans[k])


series = [json.loads(Path(p).read_text()) for p in inp.series]
prior, record = prior_of_scan(
    scan,
    scans,
    series,
    list(inp.metrics),
    list(inp.masks),
    folder_of,
    same_patient=params.same_patient,
    **params.registration,
)
try:
    with handed_over_lesion_mask(scan) if params.lesion_mask else nullcontext() as lesion_mask:
        result = quantify_scan(
            folder_of(here),
            scan,
            Path(snakemake.output.metrics).parent,
            series=series[here],
            series_options=params.series,
            preset=params.preset,
            classes=params.classes,
            measure_implausible=params.measure_implausible,
            lesion_mask=lesion_mask,
            threads=snakemake.threads,
            prior=prior,
        )
except InputError as exc:  # a bad or missing folder: one line, no traceback
    log.error("scan %s: %s", scan, " ".join(str(exc).split()), extra=INPUT_ERROR)
    sys.exit(1)
record.setdefault("reason", "")
record["added_ml"] = result.prior_added_ml  # what the prior added to the scan's own lungs (None: not used)
seconds = record.pop("seconds", None)
io.write_json(record, snakemake.output.prior, default=float)
log.info(
    "scan %s: %s; prior from %s %s%s; prior %s s; timings %s",
    scan,
    result.status,
    record["reference"] or "-",
    "used" if record["used"] else "not used",
    f" ({record['reason']})" if record["reason"] else "",
    seconds,
    result.timings,
)
