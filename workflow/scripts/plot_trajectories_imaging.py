"""The analysis plan's imaging metrics (e.g. opacity, consolidation, % of lung) over study day: subjects and arm
means by visit."""

import pandas as pd

from lungtrial import io, plots, stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
scans = pd.read_parquet(snakemake.input.scans)
arms, colors = plots.arms_and_colors(scans, p["reference_arm"], p["treatment_arm"])
metrics = snakemake.params.imaging  # the plan's imaging metrics only (none: an empty figure says so)
long = plots.imaging_long(scans, {m: stats.metric_label(m) for m in metrics}, snakemake.params.scales)
fig = plots.plot_trajectories(long, arms, colors, "CT opacity", ncols=max(min(len(metrics), 2), 1), confidence=p["confidence"])
io.write_figure(fig, snakemake.output.png, snakemake.output.svg)
log.info("%d values of %d subjects plotted", len(long), long["subject_id"].nunique())
