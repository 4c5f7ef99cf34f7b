"""Table 1, binary and continuous outcomes, imaging change from baseline and time to event by arm."""

import pandas as pd

from lungtrial import stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.stats
ref, trt, min_n, conf = p["reference_arm"], p["treatment_arm"], p["min_per_arm"], p["confidence"]

subjects = pd.read_parquet(snakemake.input.subjects)
labs = pd.read_parquet(snakemake.input.labs)
scans = pd.read_parquet(snakemake.input.scans)
adverse_events = pd.read_parquet(snakemake.input.adverse_events) if p["has_adverse_events"] else None
stats.check_arms(subjects, ref, trt, snakemake.input.subjects)
arms = [ref, trt, *sorted(set(subjects["arm"].astype(str)) - {ref, trt})]

tables = {
    "table1": stats.table1(subjects, labs, scans, arms, p["visits"][0]),
    "binary": stats.binary_outcomes(subjects, adverse_events, ref, trt, min_n),
    "continuous": stats.continuous_outcomes(subjects, labs, ref, trt, min_n, conf),
    "imaging_change": stats.imaging_change(scans, p["visits"], ref, trt, min_n, conf),
    "survival": stats.survival(subjects, ref, trt, min_n, conf),
}
for name, table in tables.items():
    stats.write_csv(table, snakemake.output[name])
    log.info("%s: %d rows", name, len(table))
