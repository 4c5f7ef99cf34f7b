"""The lab mixed models of every analyte with censored values rerun under each censoring rule (a sensitivity analysis
of the plan's rule): the models of stats_mixed_models, each analyte on one scale for all rules."""

import pandas as pd

from lungtrial import io, stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p, plan, models = snakemake.params.stats, snakemake.params.plan, snakemake.params.models

labs = pd.read_parquet(snakemake.input.labs)
table = stats.censoring_sensitivity_table(
    labs,
    p["reference_arm"],
    p["treatment_arm"],
    p["min_per_arm"],
    p["confidence"],
    covariance=snakemake.params.covariance,
    random_slope=models["random_slope"],
    df_method=models["df_method"],
    visits=plan["visits"],
    scales=plan["scales"],
    configured_rule=plan["censoring"],
)
io.write_csv(table, snakemake.output[0])
log.info(
    "%d analytes with censored values, rules %s (configured: %s)",
    table["outcome"].nunique() if len(table) else 0,
    ", ".join(stats.CENSOR_RULES),
    plan["censoring"],
)
