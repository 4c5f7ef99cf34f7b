"""One scan measured again with its serial prior: the lungs of the subject's least-affected measured scan
(lungtrial.imaging.serial.least_affected), registered onto this scan, bring back consolidation as dense as the wall
that the scan alone cannot tell from it (lungtrial.imaging.serial.reference_prior, quantify_scan(prior=)).

A lesion mask of config imaging.lesion_masks is used as by quantify_scan. Writes the per-scan layout of quantify_scan
into results/scans/<scan>/serial/ and prior.json: the reference, whether the prior was used and why not, the
registration's QC. The reference itself, a subject's only measured scan and an excluded scan are measured as by
quantify_scan alone (prior.json says why).
"""

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from lungtrial import io
from lungtrial.errors import InputError
from lungtrial.imaging.quantify import existing_scan_folder, handed_over_lesion_mask, quantify_scan
from lungtrial.imaging.serial import least_affected, reference_prior
from lungtrial.wfutil import INPUT_ERROR, setup_logging

log = setup_logging(snakemake.log[0])
scan = snakemake.wildcards.scan
params, inp = snakemake.params, snakemake.input
scans = list(params.scans)  # the subject's scans in time order
here = scans.index(scan)


def folder_of(k: int) -> Path:
    return Path(inp.dicom[k]) if inp.get("dicom") else existing_scan_folder(scans[k])


rows = pd.concat([pd.read_csv(p, dtype={"scan_id": str}) for p in inp.metrics], ignore_index=True)
rows = rows.assign(subject_id="subject", order=range(len(rows)))
chosen = least_affected(rows, order="order")
reference = chosen.iloc[0] if len(chosen) else None
series = [json.loads(Path(p).read_text()) for p in inp.series]
record = {"scan_id": scan, "reference": reference or "", "used": False}
prior = None
if series[here].get("status") != "ok":
    record["reason"] = "the scan is not measured"
elif reference is None or reference == scan:
    record["reason"] = "the scan is its subject's least affected measured scan (the reference)"
else:
    k = scans.index(reference)
    try:
        ref_folder = folder_of(k)
    except InputError as exc:
        ref_folder, record["reason"] = None, " ".join(str(exc).split())
    if ref_folder is not None:
        registration = {key: tuple(v) if isinstance(v, list) else v for key, v in params.registration.items()}
        same = (folder_of(here), series[here]) if params.same_patient else None
        prior = reference_prior(ref_folder, series[k], inp.masks[k], record, same_patient_as=same, **registration)
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
