"""Linear mixed models of imaging metrics and labs over study day by arm."""

import pandas as pd

from lungtrial import stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.stats

scans = pd.read_parquet(snakemake.input.scans)
labs = pd.read_parquet(snakemake.input.labs)
table = stats.mixed_models(scans, labs, p["reference_arm"], p["treatment_arm"], p["min_per_arm"], p["confidence"])
stats.write_csv(table, snakemake.output[0])
failed = table.loc[~table["converged"].astype(bool), "outcome"].tolist()
log.info("%d outcomes modelled; not estimated: %s", table["outcome"].nunique(), ", ".join(failed) or "none")
