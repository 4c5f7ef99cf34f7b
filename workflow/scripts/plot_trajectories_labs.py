"""Each lab analyte over study day: subjects, censored values (where the plan's censoring rule puts them) and arm
means by visit."""

import pandas as pd

from lungtrial import io, plots
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
labs = pd.read_parquet(snakemake.input.labs)
arms, colors = plots.arms_and_colors(labs, p["reference_arm"], p["treatment_arm"])
long = plots.labs_long(labs, snakemake.params.censoring, snakemake.params.scales)  # the models' scales
fig = plots.plot_trajectories(long, arms, colors, "Labs", ncols=3, confidence=p["confidence"])
io.write_figure(fig, snakemake.output.png, snakemake.output.svg)
log.info("%d lab values of %d analytes plotted", len(long), long["panel"].nunique())
