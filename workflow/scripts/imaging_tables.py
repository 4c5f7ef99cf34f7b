"""All scans' metrics, regions and series QC in one table each, joined with the scans sheet
(lungtrial.imaging.tables.imaging_tables)."""

from lungtrial import io
from lungtrial.imaging.tables import imaging_tables
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
priors = getattr(inp, "priors", None) or None  # serial_prior.json of each scan, with config imaging.serial_prior
tables = imaging_tables(snakemake.params.scans, inp.metrics, inp.regions, inp.series, priors)
io.write_csv(tables.metrics, out.metrics)
io.write_csv(tables.regions, out.regions)
io.write_csv(tables.qc, out.qc)
status = tables.qc["status"]
log.info("%d scans: %d measured, %d excluded", len(status), (status == "ok").sum(), (status != "ok").sum())
