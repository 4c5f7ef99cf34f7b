"""The analysis plan's comparisons (primary endpoint first, multiplicity adjusted within families) and Table 1."""

import pandas as pd

from lungtrial import io, stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p, plan_params = snakemake.params.stats, snakemake.params.plan
ref, trt, min_n, conf = p["reference_arm"], p["treatment_arm"], p["min_per_arm"], p["confidence"]
plan = stats.load_plan(plan_params["config"], plan_params["visit_windows"])

subjects = pd.read_parquet(snakemake.input.subjects)
labs = pd.read_parquet(snakemake.input.labs)
scans = pd.read_parquet(snakemake.input.scans)
adverse_events = pd.read_parquet(snakemake.input.adverse_events) if p["has_adverse_events"] else None
change = None
if snakemake.input.get("change"):  # the plan has change-map endpoints
    change = pd.read_csv(snakemake.input.change, dtype={"visit": str}, keep_default_na=False, na_values=[""])
    log.info("change table: %d pairs, %d compared", len(change), int((change["status"] == "ok").sum()))

tables = stats.analysis_tables(
    plan, subjects, labs, scans, adverse_events, ref, trt, min_n, conf, change=change, source=snakemake.input.subjects
)
for name, table in tables.items():
    io.write_csv(table, snakemake.output[name])
    log.info("%s: %d rows", name, len(table))
