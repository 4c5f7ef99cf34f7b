"""Linear mixed models of the plan's imaging metrics and of every lab by arm: visit as a factor (arm by visit, with the
plan's covariance, analysis.covariance) and study day as a line (random intercept, and a random slope as
params.models says), with the df method of params.models; censored labs by the plan's rule, scales as the plan fixes
them."""

import pandas as pd

from lungtrial import io, stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p, plan, models = snakemake.params.stats, snakemake.params.plan, snakemake.params.models

scans = pd.read_parquet(snakemake.input.scans)
labs = pd.read_parquet(snakemake.input.labs)
table = stats.mixed_models_table(
    scans,
    labs,
    p["reference_arm"],
    p["treatment_arm"],
    p["min_per_arm"],
    p["confidence"],
    covariance=snakemake.params.covariance,
    random_slope=models["random_slope"],
    df_method=models["df_method"],
    censor_rule=plan["censoring"],
    visits=plan["visits"],
    scales=plan["scales"],
    imaging={m: stats.metric_label(m) for m in plan["imaging"]},  # the plan's metrics only (none: labs only)
)
io.write_csv(table, snakemake.output[0])
bad = table.loc[~table["converged"].astype(bool)]
failed = [f"{o} ({t})" for o, t in zip(bad["outcome"], bad["time"])]
log.info(
    "%d outcomes modelled (censoring rule %s); not estimated: %s",
    table["outcome"].nunique(),
    plan["censoring"],
    ", ".join(failed) or "none",
)
