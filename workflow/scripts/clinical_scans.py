"""One row per scan: imaging metrics, study day, visit and the nearest lab values; subjects with scan counts."""

import pandas as pd

from lungtrial import clinical, io
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
inp, out, params = snakemake.input, snakemake.output, snakemake.params

catalog = clinical.load_catalog(inp.units, inp.analytes)
metrics = pd.read_csv(inp.metrics, dtype={"scan_id": str, "subject_id": str, "scan_date": str})
subjects = pd.read_parquet(inp.subjects)
labs = pd.read_parquet(inp.labs)

tables = clinical.scan_tables(metrics, subjects, labs, catalog, params.visits, params.window_days)
io.write_table(tables["scans"], out.scans_csv, out.scans)
io.write_table(tables["subjects"], out.subjects_csv, out.subjects)
io.write_table(tables["dictionary"], out.dictionary)
log.info("%d scans joined with labs (window +/- %s days)", len(tables["scans"]), params.window_days)
