"""Change from baseline of the analysis plan's imaging metrics by visit and arm (box + points)."""

import pandas as pd

from lungtrial import io, plots, stats
from lungtrial.wfutil import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params.plots
scans = pd.read_parquet(snakemake.input.scans)
arms, colors = plots.arms_and_colors(scans, p["reference_arm"], p["treatment_arm"])
visits = snakemake.params.visits
metrics = [m for m in snakemake.params.imaging if m in scans.columns]  # the plan's only (none: an empty figure)
change = stats.change_from_baseline(scans, metrics, visits, lookback_days=snakemake.params.lookback_days)
fig = plots.plot_change_by_visit(change, visits[1:], arms, colors, {m: stats.metric_label(m) for m in metrics})
io.write_figure(fig, snakemake.output.png, snakemake.output.svg)
log.info("%d changes from baseline plotted", len(change))
