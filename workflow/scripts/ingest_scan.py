"""Index one scan folder by headers, choose and validate the CT series, write series.json."""

import json

from lungtrial.dicomio import ingest
from lungtrial.wfutil import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])
scan = snakemake.wildcards.scan
result = ingest(snakemake.input.dicom, scan, strict=snakemake.params.strict, **snakemake.params.series)
with atomic_path(snakemake.output.series) as tmp:
    tmp.write_text(json.dumps(result, indent=1))
if result["status"] == "ok":
    log.info("scan %s: %s", scan, result.get("reason", "series chosen"))
else:
    log.warning("scan %s excluded: %s", scan, "; ".join(result["reasons"]))
for warning in result.get("warnings", []):
    log.warning("scan %s: %s", scan, warning)
