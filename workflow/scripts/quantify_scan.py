"""One scan: choose and validate the CT series, segment the lungs and measure opacity
(lungtrial.imaging.quantify.quantify_scan writes series.json, metrics, regions, masks and the QC picture into the
scan's folder, the layout the rule declares).

The DICOM folder is the rule's input for the demo trial; for a trial given by sheets the workflow hands it over
outside Snakemake (lungtrial.imaging.existing_scan_folder), so that its path (often named by patient IDs or
UIDs) never enters Snakemake's records, logs or report. A scan that cannot be measured in strict mode, or whose
folder is missing, ends the job with one line in its log.
"""

import sys
from contextlib import nullcontext
from pathlib import Path

from lungtrial.errors import InputError
from lungtrial.imaging import existing_scan_folder, handed_over_lesion_mask
from lungtrial.imaging.quantify import quantify_scan
from lungtrial.wfutil import INPUT_ERROR, setup_logging

log = setup_logging(snakemake.log[0])
scan = snakemake.wildcards.scan
params = snakemake.params

try:
    with handed_over_lesion_mask(scan) if params.lesion_mask else nullcontext() as lesion_mask:
        result = quantify_scan(
            snakemake.input.get("dicom") or existing_scan_folder(scan),
            scan,
            Path(snakemake.output.metrics).parent,
            series_options=params.series,
            preset=params.preset,
            classes=params.classes,
            strict=params.strict,
            measure_implausible=params.measure_implausible,
            lesion_mask=lesion_mask,
            threads=snakemake.threads,
        )
except InputError as exc:  # a bad or missing folder, or a strict-mode exclusion: one line, no traceback
    message = " ".join(str(exc).split())
    named = message.startswith((f"scan {scan} ", f"scan {scan}:"))
    log.error("%s", message if named else f"scan {scan}: {message}", extra=INPUT_ERROR)
    sys.exit(1)
except OSError as exc:  # the folder changed while it was read: the reason, never the path (it may identify)
    log.error(
        "scan %s: the DICOM folder could not be read (%s); run again",
        scan,
        exc.strerror or type(exc).__name__,
        extra=INPUT_ERROR,
    )
    sys.exit(1)

log.info("scan %s: %s; timings %s", scan, result.status, result.timings)
